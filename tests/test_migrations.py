"""Migrations: model-driven, versioned, recorded, safe to run twice or twice at once."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from dynaledger import Ledger
from dynaledger.cli import main
from dynaledger.errors import (
    ConfigurationError,
    IncompatibleIndex,
    IncompatibleTable,
    MigrationError,
    ServiceUnavailable,
)
from dynaledger.migrations import Migrator, load_revisions
from tests import faultproxy
from tests.conftest import unique

ALL_REVISIONS = ["0001", "0002"]


def _create_raw_table(
    ledger: Ledger, name: str, hash_key: str, index: dict[str, Any] | None = None
) -> None:
    """Create a table as another tool would: ``index`` is a GSI as CreateTable takes it."""
    client = ledger.botocore_client
    names = {hash_key} | {k["AttributeName"] for k in (index or {}).get("KeySchema", [])}
    extra = {"GlobalSecondaryIndexes": [index]} if index else {}
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": hash_key, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in sorted(names)],
        BillingMode="PAY_PER_REQUEST",
        **extra,
    )
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.1})


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _migrator(ledger: Ledger, revisions: int | None = None) -> Migrator:
    """A migrator for ``ledger`` that never waits for another one: it fails at once instead."""
    chosen = load_revisions()[:revisions] if revisions is not None else None
    return Migrator(ledger._ctx, chosen, wait_seconds=0)


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

    def test_an_endpoint_botocore_reads_from_the_environment_is_not_aws(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """No endpoint_url, AWS_ENDPOINT_URL_DYNAMODB local: requests go there (botocore reads
        it), so the ledger is not AWS and migrate does not turn protection on by default."""
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9")
        ledger = Ledger(region="eu-west-1")
        assert ("http://127.0.0.1:9", False) == (
            ledger.botocore_client.meta.endpoint_url, ledger.is_aws,
        )  # fmt: skip


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

    def test_a_records_table_that_does_not_fit_stops_the_run_before_any_write(
        self, make_ledger: Callable[..., Ledger]
    ) -> None:
        """Users fits, Transactions is keyed by another attribute: migrate raises
        IncompatibleTable naming Transactions and writes nothing: no migrations table, no
        revision recorded (it used to record 0001, adopting Users, then stop)."""
        ledger = make_ledger()
        users, records, migrations = ledger.table_names
        _create_raw_table(ledger, users, "userId")
        _create_raw_table(ledger, records, "idempotentKey")
        with pytest.raises(IncompatibleTable) as caught:
            ledger.migrate()
        client = ledger.botocore_client
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            client.describe_table(TableName=migrations)
        assert records == caught.value.table_name

    def test_reads_of_tables_keyed_otherwise_are_configuration_errors(
        self, make_ledger: Callable[..., Ledger]
    ) -> None:
        """Tables made by hand with other keys, never migrated: a balance read and the
        settings read are ConfigurationErrors pointing at migrate --check (they were
        DynamoDB's bare ValidationException)."""
        ledger = make_ledger()
        users, records, migrations = ledger.table_names
        for name, key in ((users, "id"), (records, "idempotencyKey"), (migrations, "rev")):
            _create_raw_table(ledger, name, key)
        messages = []
        for read in (lambda: ledger.get_user_balance("alice"), ledger.deployment_settings):
            with pytest.raises(ConfigurationError) as caught:
                read()
            messages.append(str(caught.value))
        tail = (
            " is not keyed as this ledger's layout says (ValidationException: The provided key "
            "element does not match the schema); `dynaledger migrate --check` shows its keys"
        )
        assert [f"a table{tail}", f"table {migrations!r}{tail}"] == messages

    def test_a_later_migrate_with_another_key_attribute_stops_naming_both(
        self, make_ledger: Callable[..., Ledger]
    ) -> None:
        """Tables migrated keyed by idempotentKey: a ledger of the default layout on them is
        refused by migrate (the revisions are applied already), before any movement."""
        from dynaledger import TableLayout

        shared = make_ledger(layout=TableLayout(idempotency_key_attribute="idempotentKey"))
        shared.migrate()
        default = make_ledger(table_prefix=shared.settings.table_prefix)
        with pytest.raises(IncompatibleTable) as caught:
            default.migrate()
        records = shared.table_names[1]
        assert (
            f"table {records!r} has key schema idempotentKey S HASH, "
            "but the model expects idempotencyKey S HASH"
        ) == str(caught.value)

    def test_a_later_migrate_naming_tables_never_made_stops_naming_the_table(
        self, make_ledger: Callable[..., Ledger]
    ) -> None:
        """Migrated with the default layout; a ledger naming its accounts table OtherUsers on
        the same migrations table finds every revision applied and no such table: an error."""
        from dynaledger import TableLayout
        from dynaledger.errors import MigrationError

        migrated = make_ledger()
        migrated.migrate()
        other = make_ledger(table_prefix=migrated.settings.table_prefix,
                            layout=TableLayout(users_table="OtherUsers"))  # fmt: skip
        with pytest.raises(MigrationError, match="does not exist, though the revisions") as caught:
            other.migrate()
        assert f"'{migrated.settings.table_prefix}OtherUsers'" in str(caught.value)


HISTORY_INDEX = "userId-timestamp-index"


def _history_index(keys: list[tuple[str, str]], projection: str) -> dict[str, Any]:
    return {
        "IndexName": HISTORY_INDEX,
        "KeySchema": [{"AttributeName": name, "KeyType": kind} for name, kind in keys],
        "Projection": {"ProjectionType": projection},
    }


class TestAdoptionChecksTheHistoryIndex:
    @pytest.mark.parametrize(
        ("range_key", "projection", "difference"),
        [
            ("timestamp", "KEYS_ONLY", "projection KEYS_ONLY, but the model expects ALL"),
            (
                "createdAt",
                "ALL",
                "key schema userId S HASH, createdAt S RANGE, "
                "but the model expects userId S HASH, timestamp S RANGE",
            ),
        ],
    )
    def test_a_history_index_keyed_or_projected_otherwise_is_refused_naming_the_difference(
        self, make_ledger: Callable[..., Ledger], range_key: str, projection: str, difference: str
    ) -> None:
        """History reads every attribute through the index: KEYS_ONLY or other keys stop the
        run before anything is written (no revision recorded)."""
        ledger = make_ledger()
        transactions = ledger.table_names[1]
        index = _history_index([("userId", "HASH"), (range_key, "RANGE")], projection)
        _create_raw_table(ledger, transactions, "idempotencyKey", index)
        with pytest.raises(IncompatibleIndex) as caught:
            ledger.migrate()
        assert f"table {transactions!r} has index {HISTORY_INDEX!r} with {difference}" == str(
            caught.value
        )
        assert isinstance(caught.value, IncompatibleTable)
        assert (HISTORY_INDEX, transactions) == (caught.value.index_name, caught.value.table_name)
        assert [False, False] == [s.applied for s in ledger.migration_status()]

    def test_a_matching_history_index_is_adopted(self, make_ledger: Callable[..., Ledger]) -> None:
        """The same index made by another tool (keys and ALL) is kept and history reads it."""
        ledger = make_ledger()
        transactions = ledger.table_names[1]
        index = _history_index([("userId", "HASH"), ("timestamp", "RANGE")], "ALL")
        _create_raw_table(ledger, transactions, "idempotencyKey", index)
        assert ALL_REVISIONS == ledger.migrate()
        ledger.create_user("adopted")
        ledger.transact(idempotency_key="adopt-1", user_id="adopted", amount="2", type="credit")
        assert ["adopt-1"] == [e.idempotency_key for e in ledger.history("adopted").items]


class TestSchemaErrors:
    def test_an_unreachable_endpoint_is_retried_then_service_unavailable(
        self, make_ledger: Callable[..., Ledger]
    ) -> None:
        """migrate's first DescribeTable goes through the retry loop: 8 attempts, then an error."""
        ledger = make_ledger(f"http://127.0.0.1:{_closed_port()}", connect_timeout=1)
        with pytest.raises(ServiceUnavailable) as caught:
            ledger.migrate()
        assert str(caught.value).startswith("DynamoDB did not answer (Unable to describe table: ")
        assert (8, {"unavailable": 7}, 1) == (
            ledger.stats.attempts, ledger.stats.retries, ledger.stats.exhausted,
        )  # fmt: skip

    @pytest.mark.parametrize(
        ("operation", "fault"),
        [
            ("DescribeTable", faultproxy.SERVER_ERROR),
            ("CreateTable", faultproxy.THROTTLE),
            ("UpdateTable", faultproxy.GATEWAY_ERROR),
            ("UpdateContinuousBackups", faultproxy.SERVER_ERROR),
            ("PutItem", faultproxy.THROTTLE),
            ("UpdateItem", faultproxy.SERVER_ERROR),
        ],
    )
    def test_transient_failures_of_schema_calls_are_retried(
        self, make_ledger: Callable[..., Ledger], dynamodb_endpoint: str, operation: str, fault: str
    ) -> None:
        """Two faults on any schema or migration-record request: retried, and migrate completes."""
        prefix = f"{unique('sf')}_"
        with faultproxy.fault_proxy(
            dynamodb_endpoint, faultproxy.scripted(fault, fault, operation=operation)
        ) as proxy:
            through = make_ledger(proxy.url, table_prefix=prefix)
            applied = through.migrate(point_in_time_recovery=True, deletion_protection=True)
        assert (ALL_REVISIONS, 2) == (applied, proxy.injected[fault])
        assert {"unavailable" if fault != faultproxy.THROTTLE else "contention": 2} == (
            through.stats.retries
        )

    def test_cli_migrate_on_a_closed_port_prints_one_error_line(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """``dynaledger --endpoint http://127.0.0.1:PORT migrate``: exit 1, one line on stderr."""
        port = _closed_port()
        code = main(["--endpoint", f"http://127.0.0.1:{port}", "migrate"])
        out, err = capsys.readouterr()
        assert (1, "") == (code, out)
        assert [
            f"error: DynamoDB did not answer (Unable to describe table: Could not connect to the "
            f'endpoint URL: "http://127.0.0.1:{port}/"); migrate is safe to run again'
        ] == err.splitlines()

    def test_cli_migrate_status_on_a_closed_port_prints_one_error_line(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """``migrate --status`` reads the records through the same loop: exit 1, one line."""
        port = _closed_port()
        code = main(["--endpoint", f"http://127.0.0.1:{port}", "migrate", "--status"])
        out, err = capsys.readouterr()
        assert (1, "") == (code, out)
        assert [
            f"error: DynamoDB did not answer (Failed to scan table: Could not connect to the "
            f'endpoint URL: "http://127.0.0.1:{port}/"); migrate is safe to run again'
        ] == err.splitlines()


class TestClaims:
    @pytest.mark.parametrize("fault", [faultproxy.DROP_AFTER_COMMIT, faultproxy.STALL_AFTER_COMMIT])
    def test_a_claim_whose_reply_was_lost_recognises_itself_on_retry(
        self, make_ledger: Callable[..., Ledger], dynamodb_endpoint: str, fault: str
    ) -> None:
        """The claim committed, its reply was lost: the retry sees its own token and applies."""
        prefix = f"{unique('lost')}_"
        with faultproxy.fault_proxy(
            dynamodb_endpoint, faultproxy.scripted(fault, operation="PutItem")
        ) as proxy:
            through = make_ledger(proxy.url, table_prefix=prefix, read_timeout=0.5)
            applied = _migrator(through).upgrade()
        assert (ALL_REVISIONS, 1) == (applied, proxy.injected[fault])
        ledger = make_ledger(table_prefix=prefix)
        assert [(True, None), (True, None)] == [
            (s.applied, s.claimed_by) for s in ledger.migration_status()
        ]

    def _die_while_applying_0002(self, ledger: Ledger) -> None:
        """Apply 0001, then leave the claim a migrator killed inside 0002 would leave."""
        assert ["0001"] == _migrator(ledger, revisions=1).upgrade()
        ledger.botocore_client.put_item(
            TableName=ledger.table_names[2],
            Item={
                "revision": {"S": "0002"},
                "state": {"S": "applying"},
                "startedAt": {"S": "2026-01-02T03:04:05.000000Z"},
                "appliedBy": {"S": "deadhost:4242"},
                "claimToken": {"S": "token-of-the-dead-migrator"},
            },
        )

    def test_a_stale_claim_is_named_and_released_by_the_cli(
        self, make_ledger: Callable[..., Ledger], dynamodb_endpoint: str,
        capsys: pytest.CaptureFixture[str],
    ) -> None:  # fmt: skip
        """A dead migrator's claim blocks 0002 with a message naming the command that frees it."""
        ledger = make_ledger()
        self._die_while_applying_0002(ledger)
        with pytest.raises(MigrationError) as caught:
            _migrator(ledger).upgrade()
        assert (
            "revision 0002 is still being applied by deadhost:4242 since 2026-01-02 03:04:05Z; "
            "if that migrator is gone, run `dynaledger migrate --release 0002`, then migrate again"
        ) == str(caught.value)

        cli = ["--endpoint", dynamodb_endpoint, "--table-prefix", ledger.settings.table_prefix]
        assert 0 == main([*cli, "migrate", "--status"])
        status = capsys.readouterr().out.splitlines()[1]
        assert status.startswith(
            "0002  being applied by deadhost:4242 since 2026-01-02 03:04:05Z "
            "(if it is gone: migrate --release 0002) "
        )
        assert 0 == main([*cli, "migrate", "--release", "0002"])
        assert (
            "released 0002 (claimed by deadhost:4242 since 2026-01-02 03:04:05Z); "
            "`dynaledger migrate` applies it again\n"
        ) == capsys.readouterr().out
        assert ["0002"] == ledger.migrate()
        assert [True, True] == [s.applied for s in ledger.migration_status()]

    @pytest.mark.parametrize(
        ("revision", "message"),
        [
            ("0001", "revision 0001 is applied: nothing to release"),
            ("0009", "unknown revision '0009'; the revisions are 0001, 0002"),
        ],
    )
    def test_release_refuses_what_is_not_a_claim(
        self, fresh_ledger: Ledger, revision: str, message: str
    ) -> None:
        """Releasing an applied or unknown revision is a MigrationError and changes nothing."""
        with pytest.raises(MigrationError) as caught:
            fresh_ledger.release_migration(revision)
        assert message == str(caught.value)
        assert [True, True] == [s.applied for s in fresh_ledger.migration_status()]

    def test_a_failed_revision_releases_its_own_claim(
        self, make_ledger: Callable[..., Ledger]
    ) -> None:
        """A revision that raises hands its claim back; the next migrate applies it."""
        ledger = make_ledger()
        first = load_revisions()[0]

        def broken(ctx: object) -> None:
            raise RuntimeError("revision failed")

        failing = Migrator(ledger._ctx, [attrs.evolve(first, upgrade=broken)], wait_seconds=0)
        with pytest.raises(RuntimeError, match="revision failed"):
            failing.upgrade()
        assert [(False, None)] == [(s.applied, s.claimed_by) for s in failing.status()]
        assert ALL_REVISIONS == _migrator(ledger).upgrade()
