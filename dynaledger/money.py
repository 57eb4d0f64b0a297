"""Exact money: currencies and assets, their decimals, and the parsing of amounts.

Every amount is a :class:`~decimal.Decimal` quantized to its currency's smallest
unit. Floats are accepted only when their shortest repr already fits, so no
binary rounding error can reach a balance. Strings are decimal numbers in
digits, with an optional exponent: ``"12.34"``, ``"1e3"`` and ``"1E+3"`` are
read as ``Decimal`` reads them, so ``"1e3"`` and ``Decimal("1E+3")`` are the
same amount; signs, spaces, separators and other digits are refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Context, Decimal, InvalidOperation

import attrs

from dynaledger.errors import ValidationError

#: ISO 4217 currencies whose minor unit is not two decimals.
_MINOR_UNITS_OTHER_THAN_TWO: dict[str, int] = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0,
    "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    "CLF": 4, "UYW": 4,
}  # fmt: skip

#: ISO 4217 currencies with two decimals.
_TWO_DECIMAL_CURRENCIES = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP
    BYN BZD CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP
    GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT
    LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN
    NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP
    SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD UYU UZS VES
    WST XCD XCG YER ZAR ZMW ZWG
    """.split()
)

MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(_TWO_DECIMAL_CURRENCIES, 2),
    **_MINOR_UNITS_OTHER_THAN_TWO,
}

#: The largest amount one credit, debit or transfer may move, in any currency.
MAX_AMOUNT = Decimal("1000000000000000")  # 10**15
#: A DynamoDB number holds 38 significant digits.
DYNAMODB_DIGITS = 38
#: The most decimals an asset may declare (ETH and most ERC-20 tokens use 18).
MAX_DECIMALS = 18
#: Asset codes: 2 to 12 upper-case letters and digits, at least one letter.
ASSET_CODE = re.compile(r"(?=[A-Z0-9]*[A-Z])[A-Z0-9]{2,12}")

#: A number written as text: ASCII digits, on both sides of a point if any, an optional
#: exponent (``int()`` and ``float()`` also take other scripts' digits, spaces and ``_``).
DECIMAL_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
#: A whole number as text: ASCII digits only (``int`` also takes other scripts' digits,
#: ``_`` and spaces).
WHOLE_NUMBER = re.compile(r"-?[0-9]+")
MAX_ID_LENGTH = 255


def _checked_assets(assets: object) -> dict[str, int]:
    if assets is None:
        return {}
    if not isinstance(assets, Mapping):
        raise ValidationError("assets", f"must map codes to decimals, not {type(assets).__name__}")
    checked: dict[str, int] = {}
    for code, places in assets.items():
        if not isinstance(code, str) or not ASSET_CODE.fullmatch(code):
            raise ValidationError(
                "assets", f"{code!r} is not an asset code (2 to 12 of A-Z and 0-9, one letter)"
            )
        if isinstance(places, bool) or not isinstance(places, int):
            raise ValidationError("assets", f"{code}: decimals must be an int, not {places!r}")
        if not 0 <= places <= MAX_DECIMALS:
            raise ValidationError("assets", f"{code}: decimals must be 0 to {MAX_DECIMALS}")
        if code in MINOR_UNITS and MINOR_UNITS[code] != places:
            raise ValidationError(
                "assets", f"{code} is ISO 4217 with {MINOR_UNITS[code]} decimals, not {places}"
            )
        checked[code] = places
    return dict(sorted(checked.items()))


def parse_assets(text: str, field: str = "assets") -> dict[str, int]:
    """Read ``"BTC:8,ETH:18"`` (the form of ``DYNALEDGER_ASSETS``) into codes and decimals:
    each code once, no empty entry; empty text declares none."""
    assets: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")) if text.strip() else ():
        code, sep, places = (side.strip() for side in part.partition(":"))
        if not sep or not (places.isascii() and places.isdigit()):
            raise ValidationError(field, f"{part!r} is not CODE:DECIMALS, such as BTC:8")
        if code in assets:
            raise ValidationError(field, f"{code} is declared twice")
        assets[code] = int(places)
    try:
        return _checked_assets(assets)
    except ValidationError as error:
        raise ValidationError(field, error.rule) from None


#: The smallest unit at each number of decimals: ``_QUANTA[2] == Decimal("0.01")``.
_QUANTA = [Decimal(1).scaleb(-places) for places in range(MAX_DECIMALS + 1)]


@attrs.frozen
class Currencies:
    """What a deployment can hold: ISO 4217 currencies and the assets it declares.

    Every amount is checked against its currency's decimals; every balance
    stays within the 38 significant digits a DynamoDB number holds.

    Attributes:
        assets: Declared assets and their decimals, such as ``{"BTC": 8, "ETH": 18}``.
    """

    assets: dict[str, int] = attrs.field(factory=dict, converter=_checked_assets)
    #: Each currency's largest balance, worked out once (every credit is checked against it).
    _max_balances: dict[str, Decimal] = attrs.field(factory=dict, init=False, eq=False, repr=False)
    #: Amount strings already parsed, per currency (None: not known yet); see :meth:`parse_amount`.
    _parsed: dict[tuple[str, str | None], Decimal] = attrs.field(
        factory=dict, init=False, eq=False, repr=False
    )
    #: The most decimals any known currency allows, worked out once.
    most_decimals: int = attrs.field(init=False, eq=False, repr=False)

    @most_decimals.default
    def _most_decimals(self) -> int:
        return max([_ISO_MOST_DECIMALS, *self.assets.values()])

    def decimals(self, currency: str) -> int:
        """How many decimals ``currency`` allows."""
        found = self.assets.get(currency)
        return MINOR_UNITS[currency] if found is None else found

    def known(self, currency: str) -> bool:
        """True for an ISO 4217 code or a declared asset."""
        return currency in self.assets or currency in MINOR_UNITS

    def validate(self, currency: object, field: str = "currency") -> str:
        """Return ``currency`` if this deployment knows it, else raise :class:`ValidationError`."""
        if not isinstance(currency, str):
            raise ValidationError(field, f"must be a str, not {type(currency).__name__}")
        if not self.known(currency):
            what = "ISO 4217 currency code or declared asset" if self.assets else (
                "ISO 4217 currency code"
            )  # fmt: skip
            raise ValidationError(field, f"{currency!r} is not a known {what}")
        return currency

    def quantum(self, currency: str) -> Decimal:
        """The currency's smallest unit, such as ``Decimal("0.01")`` for USD."""
        return _QUANTA[self.decimals(currency)]

    def max_amount(self, currency: str) -> Decimal:
        """The largest amount one movement may carry: 10**15 (so 33 digits at 18 decimals)."""
        return MAX_AMOUNT

    def max_balance(self, currency: str) -> Decimal:
        """The largest balance: 38 significant digits, ``decimals`` of them after the point."""
        found = self._max_balances.get(currency)
        if found is None:
            places = self.decimals(currency)
            found = EXACT.subtract(Decimal(10) ** (DYNAMODB_DIGITS - places), _QUANTA[places])
            self._max_balances[currency] = found
        return found

    def fits(self, amount: Decimal, currency: str) -> bool:
        """True when ``amount`` has no more decimals than ``currency`` allows."""
        # In the exact context: 10**15 at 18 decimals is past the default context's 28 digits.
        return amount == amount.quantize(self.quantum(currency), context=EXACT)

    def parse_amount(self, value: object, currency: str | None, field: str = "amount") -> Decimal:
        """Turn ``value`` into an exact, positive amount in ``currency``'s smallest unit.

        With ``currency`` None (not known yet) the amount may have as many
        decimals as any known currency allows; check it with :meth:`fits` once
        the currency is known.

        Raises:
            ValidationError: The value is not finite, not positive, above
                :data:`MAX_AMOUNT`, or has more decimals than the currency allows.
        """
        if type(value) is not str:
            return self._checked(_to_decimal(value, field), currency, field, allow_zero=False)
        # Callers send the same few amount strings again and again: each valid one is
        # parsed once per currency (a refused one raises every time, naming its field).
        key = (value, currency)
        found = self._parsed.get(key)
        if found is None:
            found = self._checked(_to_decimal(value, field), currency, field, allow_zero=False)
            if len(self._parsed) >= _PARSED_SIZE:
                self._parsed.clear()
            self._parsed[key] = found
        return found

    def parse_balance(self, value: object, currency: str, field: str = "balance") -> Decimal:
        """Like :meth:`parse_amount`, but zero is allowed and the bound is the largest balance."""
        return self._checked(_to_decimal(value, field), currency, field, allow_zero=True)

    def parse_total(self, value: object, currency: str | None, field: str = "amount") -> Decimal:
        """Like :meth:`parse_amount`, bounded by the largest balance, not the largest amount:
        what several legs moved together (a posting's total) may pass 10**15.

        With ``currency`` None, the bound is the largest a number of 38 whole digits holds.
        """
        largest = _LARGEST_NUMBER if currency is None else self.max_balance(currency)
        amount = _to_decimal(value, field)
        return self._checked(amount, currency, field, allow_zero=False, largest=largest)

    def present(self, amount: Decimal, currency: str) -> Decimal:
        """Show a stored number in the currency's smallest unit when that loses nothing."""
        if not self.known(currency) or not amount.is_finite():
            return amount
        try:
            exact = amount.quantize(self.quantum(currency), context=EXACT)
        except InvalidOperation:
            return amount
        return exact if exact == amount else amount

    def _checked(
        self,
        amount: Decimal,
        currency: str | None,
        field: str,
        *,
        allow_zero: bool,
        largest: Decimal | None = None,
    ) -> Decimal:
        if not amount.is_finite():
            raise ValidationError(field, f"must be finite, not {amount}")
        if amount < 0 or amount.is_signed():
            raise ValidationError(field, f"must not be negative, got {amount}")
        if amount == 0 and not allow_zero:
            raise ValidationError(field, "must be greater than zero")
        if largest is None:
            largest = (
                self.max_amount(currency or "")
                if not allow_zero or currency is None
                else self.max_balance(currency)
            )
        if amount > largest:
            why = " (no balance of any currency holds more)" if largest is _LARGEST_NUMBER else ""
            raise ValidationError(field, f"must be at most {largest}{why}, got {amount}")
        places = self.most_decimals if currency is None else self.decimals(currency)
        if _decimals(amount) > places:
            allowed = "any currency allows" if currency is None else f"{currency} allows"
            raise ValidationError(field, f"{amount} has more decimals than {allowed} ({places})")
        if currency is None:  # judged again by its currency once that is known
            return amount
        # Fits: at most the currency's largest balance (38 digits), at most its decimals.
        return amount.quantize(_QUANTA[places], context=EXACT)


def _decimals(amount: Decimal) -> int:
    """How many decimals a finite ``amount`` needs: ``1.50`` one, ``1E+3`` none.

    Read from its digits, not by rounding to a quantum: with no currency known an
    amount of 38 whole digits at 18 decimals would pass any context's precision.
    """
    _, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)  # finite
    if exponent >= 0 or not amount:
        return 0
    needed, last = -exponent, len(digits) - 1
    while needed and digits[last] == 0:  # trailing zeros are not decimals: 1.50 needs one
        needed, last = needed - 1, last - 1
    return needed


_ISO_MOST_DECIMALS = max(MINOR_UNITS.values())
#: How many parsed amount strings a :class:`Currencies` keeps before starting again.
_PARSED_SIZE = 1024
#: Wide enough for any number DynamoDB holds, with room for a quantize step. Python's
#: default context keeps 28 digits, which would round sums of 18-decimal amounts:
#: every sum of stored numbers is computed in this one.
EXACT = Context(prec=DYNAMODB_DIGITS + 2, traps=[InvalidOperation])
#: The largest number of 38 whole digits: no balance of any currency passes it.
_LARGEST_NUMBER = EXACT.subtract(EXACT.power(10, DYNAMODB_DIGITS), 1)
#: ISO 4217 only: what a ledger knows when it declares no assets.
ISO = Currencies()


def validate_currency(currency: object, field: str = "currency") -> str:
    """Return ``currency`` if it is a known ISO 4217 code, else raise :class:`ValidationError`."""
    return ISO.validate(currency, field)


def quantum(currency: str) -> Decimal:
    """The ISO currency's smallest unit, such as ``Decimal("0.01")`` for USD."""
    return ISO.quantum(currency)


def parse_amount(value: object, currency: str | None, field: str = "amount") -> Decimal:
    """:meth:`Currencies.parse_amount` for ISO 4217 currencies."""
    return ISO.parse_amount(value, currency, field)


def parse_balance(value: object, currency: str, field: str = "balance") -> Decimal:
    """:meth:`Currencies.parse_balance` for ISO 4217 currencies."""
    return ISO.parse_balance(value, currency, field)


def present(amount: Decimal, currency: str) -> Decimal:
    """:meth:`Currencies.present` for ISO 4217 currencies."""
    return ISO.present(amount, currency)


def _to_decimal(value: object, field: str) -> Decimal:
    if isinstance(value, bool):
        raise ValidationError(field, "must be a number, not a bool")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        # repr gives the shortest string that round-trips, the number the caller wrote.
        return Decimal(repr(value))
    if isinstance(value, str):
        if not DECIMAL_NUMBER.fullmatch(value):
            raise ValidationError(field, f"{value!r} is not a decimal number such as '12.34'")
        try:
            return Decimal(value)
        except ArithmeticError:  # an exponent past Decimal's own range (19 digits or more)
            raise ValidationError(field, f"{value!r} has an exponent out of range") from None
    raise ValidationError(
        field, f"must be a Decimal, int or numeric str, not {type(value).__name__}"
    )


#: Bounds of a movement's metadata: it rides on every record, so it stays small.
MAX_METADATA_ENTRIES = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 256
MAX_METADATA_BYTES = 2048
_METADATA_KEY = re.compile(r"[A-Za-z0-9_.:-]+")


def validate_metadata(value: object, field: str = "metadata") -> dict[str, str]:
    """Check a movement's metadata: at most 16 short strings under short plain keys.

    Keys are 1 to 64 of ``A-Z a-z 0-9 _ . : -``; values are strings of at most
    256 characters without control characters; all of it at most 2,048 bytes
    of UTF-8. None means no metadata. Returned sorted by key, so the same
    mapping always stands for the same request.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(field, f"must be a mapping of str to str, not {type(value).__name__}")
    if len(value) > MAX_METADATA_ENTRIES:
        raise ValidationError(field, f"at most {MAX_METADATA_ENTRIES} entries, got {len(value)}")
    checked: dict[str, str] = {}
    size = 0
    for key, text in value.items():
        if (
            not isinstance(key, str)
            or not _METADATA_KEY.fullmatch(key)
            or len(key) > (MAX_METADATA_KEY)
        ):
            raise ValidationError(
                field, f"key {key!r} must be 1 to {MAX_METADATA_KEY} of A-Z a-z 0-9 _ . : -"
            )
        if not isinstance(text, str):
            raise ValidationError(field, f"{key}: must be a str, not {type(text).__name__}")
        if len(text) > MAX_METADATA_VALUE:
            raise ValidationError(
                field, f"{key}: at most {MAX_METADATA_VALUE} characters, got {len(text)}"
            )
        problem = _forbidden_character(text)
        if problem is not None:
            raise ValidationError(field, f"{key}: {problem}")
        size += len(key.encode()) + len(text.encode())
        checked[key] = text
    if size > MAX_METADATA_BYTES:
        raise ValidationError(field, f"at most {MAX_METADATA_BYTES} bytes in all, got {size}")
    return dict(sorted(checked.items()))


def validate_identifier(value: object, field: str) -> str:
    """Check a user id or idempotency key: a non-empty str of 1 to 255 printable characters."""
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a str, not {type(value).__name__}")
    if not value:
        raise ValidationError(field, "must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise ValidationError(
            field, f"must be at most {MAX_ID_LENGTH} characters, got {len(value)}"
        )
    if value.isspace():
        raise ValidationError(field, "must not be only whitespace")
    problem = _forbidden_character(value)
    if problem is not None:
        raise ValidationError(field, problem)
    return value


def validate_user_ids(value: object, field: str = "user_ids") -> list[str]:
    """The users a maintenance call names: a str is one user, else an iterable of str
    (not bytes); each a valid identifier, each once, in the order first named."""
    if isinstance(value, str):  # one user, not its characters
        value = [value]
    elif isinstance(value, (bytes, bytearray)) or not isinstance(value, Iterable):
        raise ValidationError(field, "must be a str or an iterable of str")
    return list(dict.fromkeys(validate_identifier(user_id, field) for user_id in value))


#: What no identifier or metadata value may hold: C0 and C1 control characters, lone
#: surrogates (not UTF-8, so DynamoDB could not store them).
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _forbidden_character(text: str) -> str | None:
    """The rule ``text`` breaks by a character it holds, or None."""
    if text.isprintable():  # no control character, no surrogate: the usual case, at once
        return None
    found = _FORBIDDEN.search(text)
    if found is None:
        return None
    code = ord(found.group())
    if code < 0xD800:
        return f"must not contain control characters (found U+{code:04X})"
    return f"must not contain lone surrogates (found U+{code:04X})"
