"""Custom PynamoDB attributes: exact decimals and ISO-8601 UTC timestamps."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation

from pynamodb.attributes import Attribute
from pynamodb.constants import NUMBER, STRING


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
        number = Decimal(value)
        if not number.is_finite():
            raise ValueError(f"{self.attr_name}: DynamoDB numbers must be finite, got {number}")
        return format(number, "f")

    def deserialize(self, value: str) -> Decimal:
        """Read DynamoDB's number string into a Decimal, digit for digit."""
        try:
            return Decimal(value)
        except InvalidOperation:
            raise ValueError(f"{self.attr_name}: {value!r} is not a number") from None


def format_timestamp(moment: datetime) -> str:
    """ISO-8601 in UTC with microseconds and a ``Z``, e.g. ``2026-01-31T09:30:00.123456Z``."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: str) -> datetime:
    """Read an ISO-8601 timestamp, with ``Z`` or an offset, as an aware UTC datetime.

    Accepts what JavaScript's ``Date.toISOString`` writes, so records made by
    the TypeScript service read back too.
    """
    normalized = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    moment = datetime.fromisoformat(normalized)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


class ISODateTimeAttribute(Attribute[datetime]):
    """An aware datetime stored as an ISO-8601 UTC string that sorts in time order."""

    attr_type = STRING

    def serialize(self, value: datetime) -> str:
        """Write ``value`` as ISO-8601 UTC with microseconds."""
        return format_timestamp(value)

    def deserialize(self, value: str) -> datetime:
        """Read an ISO-8601 string into an aware UTC datetime."""
        return parse_timestamp(value)
