"""Models round-trip through a real table, under the TypeScript service's wire names."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from dynaledger import Ledger
from dynaledger.errors import UserNotFound
from dynaledger.models import DecimalAttribute
from dynaledger.models.attributes import format_timestamp, parse_timestamp
from tests.conftest import unique


class TestDecimalAttribute:
    @pytest.mark.parametrize(
        ("value", "wire"),
        [
            (Decimal("0.1"), "0.1"),
            (Decimal("12345678901234567890.12"), "12345678901234567890.12"),
            (Decimal("1E-2"), "0.01"),
            (Decimal("100"), "100"),
            (Decimal("1E+2"), "100"),
            (Decimal("1.0E+2"), "100"),
            (Decimal("1E-7"), "0.0000001"),
            (Decimal("-0.00"), "-0.00"),
            (7, "7"),
        ],
    )
    def test_serializes_plain_digits_without_a_float_step(self, value: Decimal, wire: str) -> None:
        """Numbers are written digit for digit, never through float."""
        assert wire == DecimalAttribute().serialize(value)

    @pytest.mark.parametrize("bad", [Decimal("NaN"), Decimal("Infinity")])
    def test_refuses_non_finite_numbers(self, bad: Decimal) -> None:
        """DynamoDB has no NaN or infinity; the attribute refuses them before sending."""
        with pytest.raises(ValueError, match="finite"):
            DecimalAttribute().serialize(bad)

    def test_refuses_floats(self) -> None:
        """A float would carry binary rounding into the table."""
        with pytest.raises(TypeError, match="Decimal or int"):
            DecimalAttribute().serialize(0.1)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        "amount",
        ["0.1", "12345678901234567890.12", "1E-2", "99999999999999999999999999999999999999"],
    )
    def test_round_trips_exactly_through_a_real_table(self, ledger: Ledger, amount: str) -> None:
        """What goes into DynamoDB comes back as the same Decimal, all 38 digits included."""
        user_id = unique("dec")
        ledger._ctx.models.user(user_id, balance=Decimal(amount)).save()
        stored = ledger._ctx.models.user.get(user_id, consistent_read=True)
        assert Decimal(amount) == stored.balance
        raw = ledger.botocore_client.get_item(
            TableName=ledger.table_names[0], Key={"userId": {"S": user_id}}, ConsistentRead=True
        )
        assert Decimal(amount) == Decimal(raw["Item"]["balance"]["N"])


def _random_instant(
    generator: random.Random, zone: timezone, microsecond: int | None = None
) -> datetime:
    """An instant from year 1000 to 9999 in ``zone``; a random microsecond unless given."""
    return datetime(
        generator.randint(1000, 9999), generator.randint(1, 12), generator.randint(1, 28),
        generator.randint(0, 23), generator.randint(0, 59), generator.randint(0, 59),
        generator.randint(0, 999999) if microsecond is None else microsecond, tzinfo=zone,
    )  # fmt: skip


class TestTimestamps:
    def test_format_is_iso8601_utc_with_microseconds(self) -> None:
        """Timestamps read like JavaScript's toISOString, with microseconds."""
        moment = datetime(2026, 1, 31, 9, 30, 0, 123456, tzinfo=timezone.utc)
        assert "2026-01-31T09:30:00.123456Z" == format_timestamp(moment)

    def test_parses_what_the_typescript_service_writes(self) -> None:
        """Millisecond ``Z`` strings from Date.toISOString read back as aware UTC datetimes."""
        expected = datetime(2026, 1, 31, 9, 30, 0, 123000, tzinfo=timezone.utc)
        assert expected == parse_timestamp("2026-01-31T09:30:00.123Z")

    def test_refuses_naive_datetimes(self) -> None:
        """A naive datetime has no defined instant; storing one would be a guess."""
        with pytest.raises(ValueError, match="timezone-aware"):
            format_timestamp(datetime(2026, 1, 1))

    def test_format_matches_strftime_for_any_instant_and_zone(self) -> None:
        """The writer gives strftime's text, zero microseconds and offsets too."""
        generator = random.Random(7)
        for _ in range(2000):
            zone = timezone(timedelta(minutes=generator.randint(-900, 900)))
            moment = _random_instant(generator, zone, generator.choice([0, 1, 999999, None]))
            expected = moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            assert expected == format_timestamp(moment)
            assert expected == format_timestamp(moment)  # again: the remembered text
            # The same instant in timezone.utc itself (the ledger's clock) skips astimezone.
            assert expected == format_timestamp(moment.astimezone(timezone.utc))

    def test_the_canonical_form_reads_as_the_general_parser_reads_it(self) -> None:
        """``...SS.ffffffZ`` skips the pattern; other forms and impossible dates take it."""
        generator = random.Random(11)
        for _ in range(2000):
            moment = _random_instant(generator, timezone.utc)
            text = format_timestamp(moment)
            assert moment == parse_timestamp(text)
            assert moment == parse_timestamp(text[:-1] + "+00:00")  # the general path
        with pytest.raises(ValueError, match="day is out of range"):
            parse_timestamp("2026-02-30T00:00:00.000000Z")
        for not_ours in ("2026-02-03T00:00:00.00000xZ", "2024-W01-1T12:34:56.123456Z"):
            with pytest.raises(ValueError, match="is not an ISO-8601 timestamp"):
                parse_timestamp(not_ours)

    def test_years_before_1000_are_written_with_four_digits_and_read_back(self) -> None:
        """Every instant is written in the fixed-width form, and reads back as itself."""
        moment = datetime(999, 5, 1, 0, 0, 0, 7, tzinfo=timezone.utc)
        assert "0999-05-01T00:00:00.000007Z" == format_timestamp(moment)
        assert moment == parse_timestamp(format_timestamp(moment))


class TestWireNames:
    def test_user_is_stored_under_the_seed_services_attribute_names(self, ledger: Ledger) -> None:
        """A raw get_item sees userId, balance, currency, openingBalance, createdAt, updatedAt."""
        user_id = unique("wire")
        ledger.create_user(user_id, currency="EUR", balance="12.50")
        raw = ledger.botocore_client.get_item(
            TableName=ledger.table_names[0], Key={"userId": {"S": user_id}}, ConsistentRead=True
        )["Item"]
        assert {"userId", "balance", "currency", "openingBalance", "createdAt", "updatedAt"} == set(
            raw
        )
        assert {"S": user_id} == raw["userId"]
        assert {"N": "12.5"} == {"N": str(Decimal(raw["balance"]["N"]).normalize())}
        assert {"S": "EUR"} == raw["currency"]

    def test_transaction_is_stored_under_the_seed_services_attribute_names(
        self, ledger: Ledger
    ) -> None:
        """A raw get_item of a credit sees idempotencyKey, userId, amount, type and timestamp."""
        user_id, key = unique("wire"), unique("key")
        ledger.create_user(user_id)
        result = ledger.transact(idempotency_key=key, user_id=user_id, amount="3", type="credit")
        raw = ledger.botocore_client.get_item(
            TableName=ledger.table_names[1],
            Key={"idempotencyKey": {"S": key}},
            ConsistentRead=True,
        )["Item"]
        assert {"S": key} == raw["idempotencyKey"]
        assert {"S": user_id} == raw["userId"]
        assert Decimal(3) == Decimal(raw["amount"]["N"])
        assert {"S": "credit"} == raw["type"]
        assert {"S": format_timestamp(result.timestamp)} == raw["timestamp"]

    def test_a_user_written_by_the_typescript_service_is_readable(self, ledger: Ledger) -> None:
        """An item with only userId (no balance, no currency) holds 100 USD, as the seed says."""
        user_id = unique("ts")
        ledger.botocore_client.put_item(
            TableName=ledger.table_names[0], Item={"userId": {"S": user_id}}
        )
        balance = ledger.get_user_balance(user_id)
        assert (Decimal("100.00"), "USD", True) == (
            balance.amount,
            balance.currency,
            balance.is_opening,
        )


class TestPrefixIsolation:
    def test_two_prefixes_in_one_process_do_not_see_each_others_tables(
        self, fresh_ledger: Ledger, make_ledger: Callable[..., Ledger]
    ) -> None:
        """A user created under one prefix does not exist under another."""
        other = make_ledger()
        other.migrate()
        user_id = unique("iso")
        fresh_ledger.create_user(user_id)
        assert fresh_ledger.table_names[0] != other.table_names[0]
        assert user_id == fresh_ledger.get_user_balance(user_id).user_id
        with pytest.raises(UserNotFound):
            other.get_user_balance(user_id)
