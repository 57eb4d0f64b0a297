"""Migrations: model-driven, versioned, recorded, safe to run twice or twice at once."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from dynaledger import Ledger
from dynaledger.errors import IncompatibleTable
from tests.conftest import unique

ALL_REVISIONS = ["0001", "0002"]


def _create_raw_table(ledger: Ledger, name: str, hash_key: str) -> None:
    client = ledger.botocore_client
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": hash_key, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": hash_key, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.1})


class TestMigrate:
    def test_fresh_migrate_creates_every_table_and_records_each_revision(
        self, make_ledger: Callable[..., Ledger]
    ) -> None:
        """On empty tables, migrate applies 0001 and 0002 and creates the three tables."""
        ledger = make_ledger()
        assert ALL_REVISIONS == ledger.migrate()
        pages = ledger.botocore_client.get_paginator("list_tables").paginate()
        tables = {name for page in pages for name in page["TableNames"]}
        assert set(ledger.table_names) <= tables
        assert [True, True] == [s.applied for s in ledger.migration_status()]

    def test_creates_the_history_index_on_user_and_timestamp(self, fresh_ledger: Ledger) -> None:
        """The Transactions table carries the userId/timestamp index history reads."""
        description = fresh_ledger.botocore_client.describe_table(
            TableName=fresh_ledger.table_names[1]
        )["Table"]
        (index,) = description["GlobalSecondaryIndexes"]
        keys = {k["AttributeName"]: k["KeyType"] for k in index["KeySchema"]}
        assert ("userId-timestamp-index", {"userId": "HASH", "timestamp": "RANGE"}) == (
            index["IndexName"],
            keys,
        )
        assert "PAY_PER_REQUEST" == description["BillingModeSummary"]["BillingMode"]

    def test_second_migrate_is_a_no_op(self, fresh_ledger: Ledger) -> None:
        """Running migrate again applies nothing."""
        assert [] == fresh_ledger.migrate()

    def test_status_lists_pending_then_applied(self, make_ledger: Callable[..., Ledger]) -> None:
        """Before migrate every revision is pending; after, each has its time."""
        ledger = make_ledger()
        before = ledger.migration_status()
        assert [("0001", False), ("0002", False)] == [(s.revision, s.applied) for s in before]
        ledger.migrate()
        after = ledger.migration_status()
        assert [("0001", True), ("0002", True)] == [(s.revision, s.applied) for s in after]
        assert after[0].applied_at is not None
        assert after[0].applied_at <= after[1].applied_at  # type: ignore[operator]

    def test_two_migrators_at_once_apply_each_revision_exactly_once(
        self, make_ledger: Callable[..., Ledger]
    ) -> None:
        """Racing migrators split the revisions between them: none is applied twice."""
        prefix = f"{unique('race')}_"
        ledgers = [make_ledger(table_prefix=prefix) for _ in range(3)]
        barrier = threading.Barrier(len(ledgers))
        results: list[list[str]] = [[] for _ in ledgers]

        def migrate(index: int) -> None:
            barrier.wait()
            results[index] = ledgers[index].migrate()

        threads = [threading.Thread(target=migrate, args=(i,)) for i in range(len(ledgers))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        applied = sorted(revision for result in results for revision in result)
        assert ALL_REVISIONS == applied
        assert [True, True] == [s.applied for s in ledgers[0].migration_status()]


class TestProtection:
    def test_local_endpoints_get_no_protection_by_default(self, fresh_ledger: Ledger) -> None:
        """On a local server migrate leaves point-in-time recovery and deletion protection off."""
        settings = fresh_ledger.table_settings()
        assert [(False, False)] * 3 == [
            (s.point_in_time_recovery, s.deletion_protection) for s in settings
        ]

    def test_flags_turn_both_on_for_every_table(self, make_ledger: Callable[..., Ledger]) -> None:
        """migrate(point_in_time_recovery=True, deletion_protection=True) protects all three."""
        ledger = make_ledger()
        ledger.migrate(point_in_time_recovery=True, deletion_protection=True)
        settings = ledger.table_settings()
        assert list(ledger.table_names) == [s.table for s in settings]
        assert [(True, True)] * 3 == [
            (s.point_in_time_recovery, s.deletion_protection) for s in settings
        ]

    def test_a_later_migrate_never_turns_protection_off(
        self, make_ledger: Callable[..., Ledger]
    ) -> None:
        """Protection once on stays on when migrate runs again without the flags."""
        ledger = make_ledger()
        ledger.migrate(point_in_time_recovery=True, deletion_protection=True)
        ledger.migrate(point_in_time_recovery=False, deletion_protection=False)
        assert all(s.deletion_protection for s in ledger.table_settings())

    @pytest.mark.parametrize(
        ("endpoint", "aws"),
        [
            (None, True),
            ("https://dynamodb.eu-west-1.amazonaws.com", True),
            ("http://127.0.0.1:8000", False),
            ("http://dynamodb-local:8000", False),
        ],
    )
    def test_protection_defaults_to_on_only_for_aws(self, endpoint: str | None, aws: bool) -> None:
        """AWS endpoints (and no endpoint) count as AWS; anything else as local."""
        assert aws == Ledger(endpoint, region="eu-west-1").is_aws


class TestAdoption:
    def test_tables_made_by_the_seed_services_script_are_adopted_and_indexed(
        self, make_ledger: Callable[..., Ledger]
    ) -> None:
        """Existing Users and Transactions with the expected keys are kept; the index is added."""
        ledger = make_ledger()
        users, transactions, _ = ledger.table_names
        _create_raw_table(ledger, users, "userId")
        _create_raw_table(ledger, transactions, "idempotencyKey")
        ledger.botocore_client.put_item(TableName=users, Item={"userId": {"S": "kept"}})

        assert ALL_REVISIONS == ledger.migrate()
        assert "kept" == ledger.get_user_balance("kept").user_id
        ledger.transact(idempotency_key="adopted-1", user_id="kept", amount="1", type="credit")
        assert ["adopted-1"] == [e.idempotency_key for e in ledger.history("kept").items]

    def test_a_table_with_another_key_schema_stops_the_run_naming_both(
        self, make_ledger: Callable[..., Ledger]
    ) -> None:
        """A Users table keyed by something else is an IncompatibleTable error, nothing applied."""
        ledger = make_ledger()
        users = ledger.table_names[0]
        _create_raw_table(ledger, users, "id")
        with pytest.raises(IncompatibleTable) as caught:
            ledger.migrate()
        assert (
            f"table {users!r} has key schema id S HASH, but the model expects userId S HASH"
            == str(caught.value)
        )
        assert [False, False] == [s.applied for s in ledger.migration_status()]
