"""Custom PynamoDB attributes: exact decimals and ISO-8601 UTC timestamps."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation

from pynamodb.attributes import Attribute
from pynamodb.constants import MAP, NUMBER, STRING


class DecimalAttribute(Attribute[Decimal]):
    """A DynamoDB number held as an exact :class:`~decimal.Decimal`.

    PynamoDB's ``NumberAttribute`` goes through ``float``, which cannot hold
    0.1 exactly. This attribute writes the decimal digits as they are and reads
    them back without any binary step.
    """

    attr_type = NUMBER

    def serialize(self, value: Decimal | int) -> str:
        """Write ``value`` as plain decimal digits (no float, no exponent)."""
        if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
            raise TypeError(
                f"{self.attr_name}: expected Decimal or int, got {type(value).__name__}"
            )
        number = value if type(value) is Decimal else Decimal(value)
        if not number.is_finite():
            raise ValueError(f"{self.attr_name}: DynamoDB numbers must be finite, got {number}")
        return format(number, "f")

    def deserialize(self, value: str) -> Decimal:
        """Read DynamoDB's number string into a Decimal, digit for digit."""
        try:
            return Decimal(value)
        except InvalidOperation:
            raise ValueError(f"{self.attr_name}: {value!r} is not a number") from None


#: ISO-8601 as other clients write it: ``Z``, ``z`` or an offset, 0 to 9 fractional digits.
_ISO_TIMESTAMP = re.compile(
    r"(?P<second>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d{1,9}))?"
    r"(?P<zone>[Zz]|[+-]\d{2}:\d{2})?"
)
_UTC_ZONES = frozenset({"Z", "z", "+00:00", "-00:00"})


def format_timestamp(moment: datetime) -> str:
    """ISO-8601 in UTC with microseconds and a ``Z``, e.g. ``2026-01-31T09:30:00.123456Z``.

    This is the one form dynaledger writes: fixed width, so for its own records
    the stored strings sort in time order.
    """
    last_moment, last_text = _LAST_FORMATTED[0]
    if moment is last_moment:  # a movement writes its instant on its record and account
        return last_text
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    # The ledger's own clock reads in UTC already.
    utc = moment if moment.tzinfo is timezone.utc else moment.astimezone(timezone.utc)
    # Fixed width from the fields: faster than isoformat (whose "+00:00" costs) and strftime.
    text = "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (  # noqa: UP031 - the fastest form
        utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond,
    )  # fmt: skip
    _LAST_FORMATTED[0] = (moment, text)  # one tuple, swapped whole: thread-safe
    return text


#: The instant :func:`format_timestamp` wrote last, and its text (it holds the instant,
#: so no other object can take its identity).
_LAST_FORMATTED: list[tuple[datetime | None, str]] = [(None, "")]


def parse_timestamp(text: str) -> datetime:
    """Read an ISO-8601 timestamp, with ``Z`` or an offset, as an aware UTC datetime.

    Accepts what JavaScript's ``Date.toISOString`` writes (milliseconds), what
    Python's ``isoformat`` writes (``+00:00``), and 0 to 9 fractional digits
    (digits past the microsecond are dropped). No zone means UTC.

    Raises:
        ValueError: ``text`` is not such a timestamp.
    """
    if _is_canonical(text):  # the form dynaledger writes: read it without the pattern
        try:
            return datetime.fromisoformat(text[:26] + "+00:00")
        except ValueError:
            pass  # not a real date or time: the general path says why
    found = _ISO_TIMESTAMP.fullmatch(text)
    if found is None:
        raise ValueError(f"{text!r} is not an ISO-8601 timestamp")
    fraction = (found["fraction"] or "")[:6].ljust(6, "0")
    zone = found["zone"] or "Z"
    moment = datetime.fromisoformat(
        f"{found['second']}.{fraction}{'+00:00' if zone in {'Z', 'z'} else zone}"
    )
    return moment.astimezone(timezone.utc)


def _is_canonical(text: str) -> bool:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in shape (its digits are checked by the parser)."""
    return (
        len(text) == 27
        and text[4] == text[7] == "-"  # a calendar date (not 3.11's week dates, 2024-W01-1)
        and text[10] == "T"
        and text[13] == text[16] == ":"
        and text[19] == "."
        and text[26] == "Z"
        and text.isascii()
        and text[20:26].isdigit()
    )


def instant_key(text: str) -> tuple[str, str] | None:
    """A key that sorts UTC timestamps by their instant, whatever their form; None if not UTC.

    ``2026-01-02T03:04:05Z``, ``...05.000Z`` and ``...05+00:00`` get the same
    key; ``...05.123Z`` sorts before ``...05.123456Z``, though as strings it
    sorts after it. Exact to the nanosecond.
    """
    found = _ISO_TIMESTAMP.fullmatch(text)
    if found is None or (found["zone"] or "Z") not in _UTC_ZONES:
        return None
    try:
        parse_timestamp(text)  # a real date and time, not 2026-13-45
    except ValueError:
        return None
    return found["second"], (found["fraction"] or "").ljust(9, "0")


def instant_prefix(text: str) -> str:
    """``text`` without its zone: every stored form of an instant at or after this one,
    within this one's precision, starts with it, whatever sorts after it as a string."""
    found = _ISO_TIMESTAMP.fullmatch(text)
    if found is None:
        return text
    return text[: found.end("fraction") if found["fraction"] else found.end("second")]


class ISODateTimeAttribute(Attribute[datetime]):
    """An aware datetime stored as an ISO-8601 UTC string that sorts in time order."""

    attr_type = STRING

    def serialize(self, value: datetime) -> str:
        """Write ``value`` as ISO-8601 UTC with microseconds."""
        return format_timestamp(value)

    def deserialize(self, value: str) -> datetime:
        """Read an ISO-8601 string into an aware UTC datetime."""
        return parse_timestamp(value)


class StringMapAttribute(Attribute[dict[str, str]]):
    """A DynamoDB map of strings (``M`` of ``S``), read back as a plain ``dict``.

    Holds a movement's ``metadata``; other clients see an ordinary map.
    """

    attr_type = MAP

    def serialize(self, value: dict[str, str]) -> dict[str, dict[str, str]]:
        """Write each value as a DynamoDB string."""
        return {key: {STRING: text} for key, text in value.items()}

    def deserialize(self, value: dict[str, dict[str, str]]) -> dict[str, str]:
        """Read a map whose values are all strings; anything else is refused."""
        found = {}
        for key, typed in value.items():
            if not isinstance(typed, dict) or STRING not in typed:
                raise ValueError(f"{self.attr_name}: {key!r} is not a string")
            found[key] = typed[STRING]
        return found
