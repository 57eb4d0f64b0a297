"""Errors a service can map: groups, codes, chained causes, messages that fit the call."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from pynamodb.exceptions import PynamoDBException, TransactWriteError

from dynaledger import Ledger, RetryPolicy, TableLayout, errors
from dynaledger.errors import (
    ConcurrencyError,
    ConfigurationError,
    LedgerError,
    NotFound,
    Refused,
    RequestError,
    ServiceUnavailable,
    TableNotFound,
    TransientError,
)
from tests import faultproxy
from tests.conftest import Proxied, unique

README = Path(__file__).resolve().parent.parent / "README.md"

#: class, group, code, retryable, HTTP status: the README's errors table, as code.
TABLE = [
    ("LedgerError", "LedgerError", "ledger_error", False, 500),
    ("RequestError", "LedgerError", "request_error", False, 400),
    ("ValidationError", "RequestError", "validation_error", False, 422),
    ("CurrencyMismatch", "RequestError", "currency_mismatch", False, 422),
    ("IdempotencyConflict", "RequestError", "idempotency_conflict", False, 409),
    ("NotFound", "LedgerError", "not_found", False, 404),
    ("UserNotFound", "NotFound", "user_not_found", False, 404),
    ("Refused", "LedgerError", "refused", False, 409),
    ("InsufficientFunds", "Refused", "insufficient_funds", False, 422),
    ("UserAlreadyExists", "Refused", "user_already_exists", False, 409),
    ("TransientError", "LedgerError", "transient_error", True, 503),
    ("ConcurrencyError", "TransientError", "concurrency_error", True, 503),
    ("ServiceUnavailable", "TransientError", "service_unavailable", True, 503),
    ("ConfigurationError", "LedgerError", "configuration_error", False, 503),
    ("TableNotFound", "ConfigurationError", "table_not_found", False, 503),
    ("MigrationError", "ConfigurationError", "migration_error", False, 500),
    ("IncompatibleTable", "MigrationError", "incompatible_table", False, 500),
    ("IncompatibleIndex", "IncompatibleTable", "incompatible_index", False, 500),
    ("UnreadableRecord", "ConfigurationError", "unreadable_record", False, 500),
    ("SettingsMismatch", "ConfigurationError", "settings_mismatch", False, 503),
    ("HoldNotFound", "NotFound", "hold_not_found", False, 404),
    ("HoldExpired", "Refused", "hold_expired", False, 409),
    ("HoldClosed", "Refused", "hold_closed", False, 409),
    ("HoldExceeded", "Refused", "hold_exceeded", False, 422),
    ("TooManyHolds", "Refused", "too_many_holds", False, 409),
    ("MovementNotFound", "NotFound", "movement_not_found", False, 404),
    ("NotRefundable", "Refused", "not_refundable", False, 409),
    ("RefundExceeded", "Refused", "refund_exceeded", False, 422),
]


class TestGroups:
    @pytest.mark.parametrize(("name", "group", "code", "retryable", "status"), TABLE)
    def test_each_error_has_its_group_code_retryable_flag_and_status(
        self, name: str, group: str, code: str, retryable: bool, status: int
    ) -> None:
        """Every exported error sits in its group with a stable code, flag and HTTP status."""
        cls = getattr(errors, name)
        parent = getattr(errors, group)
        assert (True, code, retryable, status) == (
            issubclass(cls, parent), cls.code, cls.retryable, cls.http_status,
        )  # fmt: skip

    def test_the_table_covers_every_exported_error_and_the_codes_are_unique(self) -> None:
        """No error is left out of the table, and no two share a code."""
        assert sorted(errors.__all__) == sorted(row[0] for row in TABLE)
        assert len(TABLE) == len({row[2] for row in TABLE})

    def test_the_readme_lists_every_error_with_its_group_code_and_status(self) -> None:
        """The README's errors table says what the classes say."""
        text = README.read_text(encoding="utf-8")
        rows = re.findall(r"^\| `(\w+)` \| `(\w+)` \| `(\w+)` \| (yes|no) \| (\d+) \|", text, re.M)
        listed = [(n, g, c, r == "yes", int(s)) for n, g, c, r, s in rows]
        assert TABLE == listed

    def test_a_new_error_class_is_known_by_its_name_by_default(self) -> None:
        """A subclass that names no code gets its class name in snake case."""

        class UnreadableRecord(ConfigurationError):
            pass

        assert ("unreadable_record", 503) == (UnreadableRecord.code, UnreadableRecord.http_status)

    def test_four_clauses_catch_every_outcome_a_caller_can_fix_or_wait_out(self) -> None:
        """Request errors, not found, refusals and transient errors are disjoint groups."""
        groups = [RequestError, NotFound, Refused, TransientError, ConfigurationError]
        for name, *_ in TABLE[1:]:
            cls = getattr(errors, name)
            assert 1 == sum(issubclass(cls, group) for group in groups), name


class TestCauses:
    def test_concurrency_error_chains_the_cancelled_transaction(self, proxied: Proxied) -> None:
        """Exhausted contention raises ConcurrencyError from the last TransactWriteError."""
        policy = RetryPolicy(max_attempts=2, base_delay=0, max_delay=0)
        through, _ = proxied(faultproxy.scripted(*[faultproxy.CONFLICT] * 2), retry=policy)
        with pytest.raises(ConcurrencyError) as caught:
            through.transact(idempotency_key=unique("k"), user_id=unique("u"), amount="1",
                             type="credit")  # fmt: skip
        error = caught.value
        assert isinstance(error.__cause__, TransactWriteError)
        assert (error.cause, error.attempts, error.retryable) == (error.__cause__, 2, True)

    def test_service_unavailable_chains_the_connection_failure(self) -> None:
        """A closed port ends in ServiceUnavailable whose cause is the failed request."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        ledger = Ledger(f"http://127.0.0.1:{port}", retry=RetryPolicy(2, 0, 0), connect_timeout=1)
        with pytest.raises(ServiceUnavailable) as caught:
            ledger.get_user_balance("anyone")
        assert isinstance(caught.value.__cause__, PynamoDBException)
        assert caught.value.cause is caught.value.__cause__

    def test_a_translated_failure_chains_its_cause(
        self, make_ledger: Callable[..., Ledger]
    ) -> None:
        """TableNotFound carries the PynamoDB error both as cause and __cause__."""
        with pytest.raises(TableNotFound) as caught:
            make_ledger().get_user_balance("anyone")
        assert isinstance(caught.value.__cause__, PynamoDBException)
        assert caught.value.cause is caught.value.__cause__


class TestMessages:
    def test_an_exhausted_read_does_not_mention_idempotency_keys(self, proxied: Proxied) -> None:
        """A balance read that keeps failing says to try again later, naming the operation."""
        policy = RetryPolicy(max_attempts=2, base_delay=0, max_delay=0)
        schedule = faultproxy.scripted(*[faultproxy.SERVER_ERROR] * 2, operation="GetItem")
        through, _ = proxied(schedule, retry=policy)
        with pytest.raises(ServiceUnavailable) as caught:
            through.get_user_balance("anyone")
        assert (
            "get_user_balance: DynamoDB did not answer or kept failing after 2 attempts; "
            "try again later"
        ) == str(caught.value)
        assert (None, "get_user_balance") == (caught.value.idempotency_key, caught.value.operation)

    def test_an_exhausted_keyed_write_says_retrying_with_its_key_is_safe(
        self, proxied: Proxied
    ) -> None:
        """A transact that keeps conflicting names its key as safe to retry."""
        policy = RetryPolicy(max_attempts=3, base_delay=0, max_delay=0)
        through, _ = proxied(faultproxy.scripted(*[faultproxy.CONFLICT] * 3), retry=policy)
        key = unique("k")
        with pytest.raises(ConcurrencyError) as caught:
            through.transact(idempotency_key=key, user_id=unique("u"), amount="1", type="debit")
        assert (
            f"transact: kept conflicting or being throttled after 3 attempts; "
            f"retrying with the same idempotency key {key!r} is safe"
        ) == str(caught.value)
        assert key == caught.value.idempotency_key


class TestTableNotFound:
    @pytest.mark.parametrize(
        ("operation", "table"),
        [
            ("get_user_balance", "Users"),
            # A write reads the deployment's settings first: that table is missing first.
            ("create_user", "SchemaMigrations"),
            ("transact", "SchemaMigrations"),
            ("transfer", "SchemaMigrations"),
            ("history", "Transactions"),
            ("reconcile", "Users"),
            ("ping", "Users"),
        ],
    )
    def test_an_unmigrated_prefix_names_the_missing_table(
        self, make_ledger: Callable[..., Ledger], operation: str, table: str
    ) -> None:
        """Every operation on missing tables raises TableNotFound with the table's full name."""
        ledger = make_ledger()
        calls: dict[str, Callable[[], object]] = {
            "get_user_balance": lambda: ledger.get_user_balance("u"),
            "create_user": lambda: ledger.create_user("u"),
            "transact": lambda: ledger.transact(idempotency_key="k", user_id="u", amount=1,
                                                type="credit"),
            "transfer": lambda: ledger.transfer(idempotency_key="k", from_user_id="u",
                                                to_user_id="v", amount=1),
            "history": lambda: ledger.history("u"),
            "reconcile": ledger.reconcile,
            "ping": ledger.ping,
        }  # fmt: skip
        with pytest.raises(TableNotFound) as caught:
            calls[operation]()
        name = ledger.settings.table_prefix + table
        assert name == caught.value.table_name
        assert f"table {name!r} does not exist; run `dynaledger migrate`" == str(caught.value)

    @pytest.mark.parametrize("missing", ["users_table", "transactions_table"])
    def test_a_transaction_names_the_one_missing_table(
        self, make_ledger: Callable[..., Ledger], missing: str
    ) -> None:
        """DynamoDB's cancellation names no table: the ledger finds the missing one."""
        migrated = make_ledger()
        migrated.migrate()
        migrated.create_user("u")
        # The same deployment, but one table under a name that was never created.
        names = {missing: "X" + getattr(TableLayout(), missing)}
        ledger = make_ledger(table_prefix=migrated.settings.table_prefix,
                             layout=TableLayout(**names))  # fmt: skip
        with pytest.raises(TableNotFound) as caught:
            ledger.transact(idempotency_key="k", user_id="u", amount=1, type="credit")
        assert ledger.settings.table_prefix + names[missing] == caught.value.table_name


class TestCreateUserContention:
    def test_create_user_retries_a_transaction_conflict(self, proxied: Proxied) -> None:
        """One injected TransactionConflict is retried; the user is created once."""
        through, proxy = proxied(faultproxy.scripted(faultproxy.CONFLICT))
        user_id = unique("cu")
        created = through.create_user(user_id, balance="7")
        assert (user_id, 1, {"contention": 1}) == (
            created.user_id, proxy.injected[faultproxy.CONFLICT], through.stats.retries,
        )  # fmt: skip
        assert "7.00" == str(through.get_user_balance(user_id).amount)

    def test_create_user_past_the_budget_raises_concurrency_error(self, proxied: Proxied) -> None:
        """Conflicts on every attempt end in ConcurrencyError, not a bare LedgerError."""
        policy = RetryPolicy(max_attempts=2, base_delay=0, max_delay=0)
        through, _ = proxied(faultproxy.scripted(*[faultproxy.CONFLICT] * 2), retry=policy)
        with pytest.raises(ConcurrencyError) as caught:
            through.create_user(unique("cu"))
        assert str(caught.value).startswith("create_user: kept conflicting")
        assert isinstance(caught.value, LedgerError)
