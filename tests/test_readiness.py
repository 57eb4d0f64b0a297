"""Deploy gates: migrate --check and ping."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dynaledger import Ledger, Readiness, SchemaCheck, TableLayout
from dynaledger.cli import main
from dynaledger.errors import ConfigurationError, TableNotFound
from dynaledger.migrations import Migrator, load_revisions
from tests.conftest import RequestCounter


def _cli(ledger: Ledger, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--endpoint", ledger.settings.endpoint_url or "",
                 "--table-prefix", ledger.settings.table_prefix, *args])  # fmt: skip
    out, err = capsys.readouterr()
    return code, out, err


class TestMigrateCheck:
    def test_pending_revisions_fail_the_check_until_migrated(
        self, make_ledger: Callable[..., Ledger], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """migrate --check exits 1 listing what is missing, then 0 once migrated."""
        ledger = make_ledger()
        p = ledger.settings.table_prefix
        before = _cli(ledger, capsys, "migrate", "--check")
        assert (1, [
            "pending revision 0001",
            "pending revision 0002",
            f"not ready: table '{p}Users' does not exist",
            f"not ready: table '{p}Transactions' does not exist",
            f"not ready: table '{p}SchemaMigrations' does not exist",
        ], "") == (before[0], before[1].splitlines(), before[2])  # fmt: skip
        assert SchemaCheck(("0001", "0002"), before_problems(p)) == ledger.check_schema()
        ledger.migrate()
        assert (0, "up to date\n", "") == _cli(ledger, capsys, "migrate", "--check")

    def test_one_pending_revision_fails_the_check(
        self, make_ledger: Callable[..., Ledger], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """With only 0001 applied, the check names 0002 and the missing table."""
        ledger = make_ledger()
        Migrator(ledger._ctx, load_revisions()[:1]).upgrade()
        p = ledger.settings.table_prefix
        assert (1, "pending revision 0002\n"
                   f"not ready: table '{p}Transactions' does not exist\n", "") == _cli(
            ledger, capsys, "migrate", "--check")  # fmt: skip

    def test_settings_other_than_the_deployments_fail_the_check(
        self, ledger: Ledger, make_ledger: Callable[..., Ledger],
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        """On migrated tables, a ledger with another opening balance fails the check naming
        it, as its writes would be refused (it said up to date)."""
        other = make_ledger(table_prefix=ledger.settings.table_prefix, opening_balance="50")
        problem = "settings: opening_balance is 100.00 for the deployment, 50.00 here"
        monkeypatch.setenv("DYNALEDGER_OPENING_BALANCE", "50")
        assert (SchemaCheck((), (problem,)), (1, f"not ready: {problem}\n", "")) == (
            other.check_schema(), _cli(other, capsys, "migrate", "--check"),
        )  # fmt: skip

    def test_a_table_with_another_key_schema_fails_the_check(
        self, make_ledger: Callable[..., Ledger]
    ) -> None:
        """A Users table keyed by ``id`` is reported as incompatible."""
        ledger = make_ledger()
        p = ledger.settings.table_prefix
        ledger.botocore_client.create_table(
            TableName=f"{p}Users", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        )  # fmt: skip
        check = ledger.check_schema()
        assert (False, f"table '{p}Users' has key schema id S HASH, but the model expects "
                       "userId S HASH") == (check.ok, check.problems[0])  # fmt: skip

    def test_a_history_index_projecting_keys_only_fails_the_check_as_migrate_refuses_it(
        self, make_ledger: Callable[..., Ledger], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The index made again with KEYS_ONLY: the check names the projection, as migrate does."""
        ledger = make_ledger()
        ledger.migrate()
        _replace_history_index(ledger, "KEYS_ONLY")
        p = ledger.settings.table_prefix
        line = (f"not ready: table '{p}Transactions' has index 'userId-timestamp-index' with "
                "projection KEYS_ONLY, but the model expects ALL\n")  # fmt: skip
        assert (1, line, "") == _cli(ledger, capsys, "migrate", "--check")


def _replace_history_index(ledger: Ledger, projection: str | None) -> None:
    """Delete the history index; make it again with ``projection`` unless None."""
    client, table = ledger.botocore_client, ledger.table_names[1]
    index = "userId-timestamp-index"
    client.update_table(TableName=table,
                        GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": index}}])  # fmt: skip
    if projection is None:
        return
    keys = [("userId", "HASH"), ("timestamp", "RANGE")]
    client.update_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": name, "AttributeType": "S"}
                              for name in ("idempotencyKey", "userId", "timestamp")],
        GlobalSecondaryIndexUpdates=[{"Create": {
            "IndexName": index, "Projection": {"ProjectionType": projection},
            "KeySchema": [{"AttributeName": name, "KeyType": kind} for name, kind in keys],
        }}],
    )  # fmt: skip


def before_problems(p: str) -> tuple[str, ...]:
    return tuple(f"table '{p}{name}' does not exist"
                 for name in ("Users", "Transactions", "SchemaMigrations"))  # fmt: skip


class TestPing:
    def test_ping_costs_one_request_per_table(
        self, ledger: Ledger, count_requests: Callable[[Ledger], RequestCounter]
    ) -> None:
        """A GetItem on Users and on Transactions and a Query of the history index."""
        counter = count_requests(ledger)
        readiness = ledger.ping()
        p = ledger.settings.table_prefix
        assert Readiness((f"{p}Users", f"{p}Transactions (userId-timestamp-index)")) == readiness
        assert {"GetItem": 2, "Query": 1} == dict(counter.by_operation)

    def test_ping_names_a_table_keyed_by_another_attribute(
        self, ledger: Ledger, make_ledger: Callable[..., Ledger]
    ) -> None:
        """A ledger whose layout keys the records by idempotentKey, on tables keyed by
        idempotencyKey: ping raises ConfigurationError naming the table and the key (it
        answered ok, and movements then failed with the server's internal error)."""
        p = ledger.settings.table_prefix
        other = make_ledger(
            table_prefix=p, layout=TableLayout(idempotency_key_attribute="idempotentKey")
        )
        with pytest.raises(ConfigurationError) as caught:
            other.ping()
        assert (
            f"table '{p}Transactions' is not keyed by 'idempotentKey', as this ledger's layout "
            "says; `dynaledger migrate --check` shows its keys"
        ) == str(caught.value)

    def test_ping_names_a_missing_table(self, make_ledger: Callable[..., Ledger]) -> None:
        """With only Users migrated, ping raises TableNotFound for Transactions."""
        ledger = make_ledger()
        Migrator(ledger._ctx, load_revisions()[:1]).upgrade()
        with pytest.raises(TableNotFound) as caught:
            ledger.ping()
        assert ledger.settings.table_prefix + "Transactions" == caught.value.table_name

    def test_a_missing_history_index_is_named_by_ping_and_history(
        self, make_ledger: Callable[..., Ledger]
    ) -> None:
        """Without the index: ping and history raise ConfigurationError naming the index, not
        TableNotFound for a table that exists."""
        ledger = make_ledger()
        ledger.migrate()
        ledger.create_user("u")
        _replace_history_index(ledger, None)
        p = ledger.settings.table_prefix
        with pytest.raises(ConfigurationError) as pinged:
            ledger.ping()
        with pytest.raises(ConfigurationError, match="userId-timestamp-index") as read:
            ledger.history("u")
        assert (
            f"table '{p}Transactions' has no index 'userId-timestamp-index'; "
            "run `dynaledger migrate`",
            False,
        ) == (str(pinged.value), isinstance(read.value, TableNotFound))

    def test_the_ping_command(
        self, ledger: Ledger, make_ledger: Callable[..., Ledger],
        capsys: pytest.CaptureFixture[str],
    ) -> None:  # fmt: skip
        """dynaledger ping exits 0 on ready tables and 1 with one line on missing ones."""
        p = ledger.settings.table_prefix
        assert (0, f"ok: {p}Users, {p}Transactions (userId-timestamp-index) answered\n", "") == (
            _cli(ledger, capsys, "ping")
        )
        empty = make_ledger()
        q = empty.settings.table_prefix
        assert (1, "", f"error: table '{q}Users' does not exist; run `dynaledger migrate`\n") == (
            _cli(empty, capsys, "ping")
        )
