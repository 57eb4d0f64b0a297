"""Exact money: currencies, their minor units, and the parsing of amounts.

Every amount is a :class:`~decimal.Decimal` quantized to its currency's minor
unit. Floats are accepted only when their shortest repr already fits, so no
binary rounding error can reach a balance.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

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

_MOST_DECIMALS = max(MINOR_UNITS.values())

#: The largest amount one credit, debit or transfer may move. With at most four
#: decimals, a balance would need 10**19 such credits to outgrow the 38
#: significant digits a DynamoDB number holds.
MAX_AMOUNT = Decimal("1000000000000000")  # 10**15

_PLAIN_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?")
MAX_ID_LENGTH = 255


def validate_currency(currency: object, field: str = "currency") -> str:
    """Return ``currency`` if it is a known ISO 4217 code, else raise :class:`ValidationError`."""
    if not isinstance(currency, str):
        raise ValidationError(field, f"must be a str, not {type(currency).__name__}")
    if currency not in MINOR_UNITS:
        raise ValidationError(field, f"{currency!r} is not a known ISO 4217 currency code")
    return currency


def quantum(currency: str) -> Decimal:
    """The currency's smallest unit, such as ``Decimal("0.01")`` for USD."""
    return Decimal(1).scaleb(-MINOR_UNITS[currency])


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
        if not _PLAIN_NUMBER.fullmatch(value):
            raise ValidationError(field, f"{value!r} is not a plain decimal number such as '12.34'")
        return Decimal(value)
    raise ValidationError(
        field, f"must be a Decimal, int or numeric str, not {type(value).__name__}"
    )


def parse_amount(value: object, currency: str | None, field: str = "amount") -> Decimal:
    """Turn ``value`` into an exact, positive amount in ``currency``'s minor unit.

    With ``currency`` None (not known yet) the amount may have as many
    decimals as any currency allows; check it with :func:`fits` once the
    currency is known.

    Raises:
        ValidationError: The value is not finite, not positive, above
            :data:`MAX_AMOUNT`, or has more decimals than the currency allows.
    """
    amount = _to_decimal(value, field)
    return _checked(amount, currency, field, allow_zero=False)


def parse_balance(value: object, currency: str, field: str = "balance") -> Decimal:
    """Like :func:`parse_amount`, but zero is allowed: a starting balance may be empty."""
    return _checked(_to_decimal(value, field), currency, field, allow_zero=True)


def decimals(currency: str) -> int:
    """How many decimals ``currency`` allows."""
    return MINOR_UNITS[currency]


def fits(amount: Decimal, currency: str) -> bool:
    """True when ``amount`` has no more decimals than ``currency`` allows."""
    return amount == amount.quantize(quantum(currency))


def _checked(amount: Decimal, currency: str | None, field: str, *, allow_zero: bool) -> Decimal:
    if not amount.is_finite():
        raise ValidationError(field, f"must be finite, not {amount}")
    if amount < 0 or amount.is_signed():
        raise ValidationError(field, f"must not be negative, got {amount}")
    if amount == 0 and not allow_zero:
        raise ValidationError(field, "must be greater than zero")
    if amount > MAX_AMOUNT:
        raise ValidationError(field, f"must be at most {MAX_AMOUNT}, got {amount}")
    places = _MOST_DECIMALS if currency is None else decimals(currency)
    try:
        exact = amount.quantize(Decimal(1).scaleb(-places))
    except InvalidOperation:  # pragma: no cover - bounded by MAX_AMOUNT above
        raise ValidationError(field, f"{amount} cannot be represented") from None
    if exact != amount:
        allowed = "any currency allows" if currency is None else f"{currency} allows"
        raise ValidationError(field, f"{amount} has more decimals than {allowed} ({places})")
    return exact if currency is not None else amount


def present(amount: Decimal, currency: str) -> Decimal:
    """Show a stored number in the currency's minor unit when that loses nothing."""
    step = quantum(currency) if currency in MINOR_UNITS else None
    if step is None or not amount.is_finite():
        return amount
    try:
        exact = amount.quantize(step)
    except InvalidOperation:
        return amount
    return exact if exact == amount else amount


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
    if not value.strip():
        raise ValidationError(field, "must not be only whitespace")
    for char in value:
        code = ord(char)
        if code < 0x20 or 0x7F <= code < 0xA0:
            raise ValidationError(
                field, f"must not contain control characters (found U+{code:04X})"
            )
        if 0xD800 <= code <= 0xDFFF:
            raise ValidationError(field, f"must not contain lone surrogates (found U+{code:04X})")
    return value
