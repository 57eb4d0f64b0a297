"""Seeds: the fixed test users and synthetic bulk users, both idempotent."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from dynaledger import Ledger
from dynaledger.errors import UserAlreadyExists, ValidationError
from dynaledger.values import SeedReport


class TestSeed:
    def test_writes_the_seed_users_then_skips_them(self, fresh_ledger: Ledger) -> None:
        """The first run creates all five users; the second creates none and skips five."""
        assert SeedReport(created=5, skipped=0) == fresh_ledger.seed()
        assert SeedReport(created=0, skipped=5) == fresh_ledger.seed()

    def test_seed_users_show_stored_default_and_foreign_currency_balances(
        self, fresh_ledger: Ledger
    ) -> None:
        """alice has her stored balance, carol the opening balance, dmitri holds EUR."""
        fresh_ledger.seed()
        balances = {
            u: fresh_ledger.get_user_balance(u) for u in ("alice", "carol", "dmitri", "emi")
        }
        assert (Decimal("250.00"), False) == (
            balances["alice"].amount,
            balances["alice"].is_opening,
        )
        assert (Decimal("100.00"), True) == (balances["carol"].amount, balances["carol"].is_opening)
        assert ("EUR", Decimal("1200.50")) == (
            balances["dmitri"].currency,
            balances["dmitri"].amount,
        )
        assert ("JPY", Decimal("15000")) == (balances["emi"].currency, balances["emi"].amount)

    def test_an_existing_user_is_left_untouched(self, fresh_ledger: Ledger) -> None:
        """A seed user that already exists keeps its own balance."""
        fresh_ledger.create_user("alice", balance="1.00")
        assert SeedReport(created=4, skipped=1) == fresh_ledger.seed()
        assert Decimal("1.00") == fresh_ledger.get_user_balance("alice").amount


class TestGenerate:
    def test_generates_n_users_in_batches_with_progress(self, fresh_ledger: Ledger) -> None:
        """250 synthetic users are written in batches of 100, reporting progress after each."""
        seen: list[tuple[int, int]] = []
        report = fresh_ledger.generate_users(250, progress=lambda d, t: seen.append((d, t)))
        assert SeedReport(created=250, skipped=0) == report
        assert [(100, 250), (200, 250), (250, 250)] == seen
        assert Decimal("100.00") == fresh_ledger.get_user_balance("synthetic-0000250").amount

    def test_generating_again_skips_existing_users(self, fresh_ledger: Ledger) -> None:
        """A rerun with a larger count writes only the new ids."""
        fresh_ledger.generate_users(30)
        assert SeedReport(created=10, skipped=30) == fresh_ledger.generate_users(40)

    def test_a_progress_that_is_not_callable_is_refused_before_any_write(
        self, fresh_ledger: Ledger
    ) -> None:
        """progress=5 is a ValidationError on progress and no user is written (three were,
        then a TypeError came)."""
        with pytest.raises(ValidationError) as caught:
            fresh_ledger.generate_users(3, progress=5)  # type: ignore[arg-type]
        table = fresh_ledger.table_names[0]
        written = fresh_ledger.botocore_client.scan(TableName=table)["Items"]
        assert ("progress", []) == (caught.value.field, written)

    @pytest.mark.parametrize("count", [0, -1, True, "10"])
    def test_count_must_be_a_positive_int(self, fresh_ledger: Ledger, count: object) -> None:
        """A count that is not a positive int is a ValidationError on count."""
        with pytest.raises(ValidationError) as caught:
            fresh_ledger.generate_users(count)  # type: ignore[arg-type]
        assert "count" == caught.value.field


class TestCreateUser:
    def test_a_taken_id_raises_user_already_exists(self, fresh_ledger: Ledger) -> None:
        """Creating the same id twice fails the second time, leaving the first intact."""
        fresh_ledger.create_user("dup", balance="5")
        with pytest.raises(UserAlreadyExists):
            fresh_ledger.create_user("dup", balance="7")
        assert Decimal("5.00") == fresh_ledger.get_user_balance("dup").amount


class TestGenerateNeverOverwrites:
    def test_an_account_created_and_funded_just_before_the_write_keeps_its_money(
        self, fresh_ledger: Ledger
    ) -> None:
        """Another client creates and funds synthetic-0000002 right before the seed's request
        is sent: the seed skips it (its balance stays 7.50 and reconcile passes)."""
        other = Ledger(
            fresh_ledger.settings.endpoint_url, table_prefix=fresh_ledger.settings.table_prefix
        )
        raced: list[str] = []

        def create_first(**kwargs: Any) -> None:
            if not raced:
                raced.append("synthetic-0000002")
                other.create_user("synthetic-0000002", balance="0")
                other.transact(idempotency_key="fund", user_id="synthetic-0000002",
                               amount="7.50", type="credit")  # fmt: skip

        events = fresh_ledger.botocore_client.meta.events
        events.register("before-send.dynamodb.TransactWriteItems", create_first)
        try:
            report = fresh_ledger.generate_users(3)
        finally:
            events.unregister("before-send.dynamodb.TransactWriteItems", create_first)
        assert SeedReport(created=2, skipped=1) == report
        assert Decimal("7.50") == fresh_ledger.get_user_balance("synthetic-0000002").amount
        assert fresh_ledger.reconcile().ok

    def test_every_put_is_conditional_on_a_new_id(self, fresh_ledger: Ledger) -> None:
        """Each user is a Put with ``attribute_not_exists``; no BatchWriteItem is sent."""
        sent: list[tuple[str, dict[str, Any]]] = []

        def record(params: dict[str, Any], model: Any, **kwargs: Any) -> None:
            sent.append((model.name, params))

        events = fresh_ledger.botocore_client.meta.events
        events.register("before-parameter-build.dynamodb", record)
        try:
            fresh_ledger.generate_users(5)
        finally:
            events.unregister("before-parameter-build.dynamodb", record)
        ((operation, params),) = sent
        conditions = {item["Put"]["ConditionExpression"] for item in params["TransactItems"]}
        assert ("TransactWriteItems", 5, {"attribute_not_exists (#0)"}) == (
            operation, len(params["TransactItems"]), conditions,
        )  # fmt: skip

    def test_a_lost_reply_counts_the_users_as_created_not_skipped(
        self, fresh_ledger: Ledger
    ) -> None:
        """When the batch committed but its reply was lost, the retry recognises its own users."""
        from botocore.exceptions import ReadTimeoutError

        dropped: list[bool] = []

        def drop_reply(http_response: Any, **kwargs: Any) -> None:
            if not dropped:
                dropped.append(True)
                raise ReadTimeoutError(endpoint_url="lost reply")

        events = fresh_ledger.botocore_client.meta.events
        events.register("after-call.dynamodb.TransactWriteItems", drop_reply)
        try:
            report = fresh_ledger.generate_users(4)
        finally:
            events.unregister("after-call.dynamodb.TransactWriteItems", drop_reply)
        assert (SeedReport(created=4, skipped=0), [True]) == (report, dropped)
