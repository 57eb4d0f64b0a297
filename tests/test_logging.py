"""Logs: silent by default; retries, exhausted budgets, own successes and migrations recorded."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from dynaledger import Ledger, RetryPolicy
from dynaledger.errors import ConcurrencyError
from tests import faultproxy
from tests.conftest import Proxied, unique


def _records(
    caplog: pytest.LogCaptureFixture, minimum: int = logging.DEBUG
) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("dynaledger") and r.levelno >= minimum]


class TestSilence:
    def test_the_package_logger_has_only_a_null_handler(self) -> None:
        """Importing dynaledger configures no output: one NullHandler, records propagate."""
        logger = logging.getLogger("dynaledger")
        assert ([logging.NullHandler], True) == (
            [type(handler) for handler in logger.handlers], logger.propagate,
        )  # fmt: skip

    def test_successful_calls_log_nothing_at_info(
        self, ledger: Ledger, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Create, credit, replay, transfer, balance and history log nothing at INFO or above."""
        caplog.set_level(logging.DEBUG, logger="dynaledger")
        payer, payee, key = unique("s"), unique("s"), unique("k")
        ledger.create_user(payer)
        ledger.create_user(payee)
        ledger.transact(idempotency_key=key, user_id=payer, amount="1", type="credit")
        ledger.transact(idempotency_key=key, user_id=payer, amount="1", type="credit")
        ledger.transfer(idempotency_key=unique("t"), from_user_id=payer, to_user_id=payee,
                        amount="1")  # fmt: skip
        ledger.get_user_balance(payer)
        ledger.history(payer)
        assert [] == _records(caplog, logging.INFO)


class TestRetries:
    def test_each_retry_is_logged_with_kind_attempt_backoff_operation_and_key(
        self, ledger: Ledger, proxied: Proxied, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A conflict then a 500 give two INFO records on dynaledger.retry, then success."""
        caplog.set_level(logging.DEBUG, logger="dynaledger")
        through, _ = proxied(faultproxy.scripted(faultproxy.CONFLICT, faultproxy.SERVER_ERROR))
        user_id, key = unique("l"), unique("k")
        ledger.create_user(user_id)
        through.transact(idempotency_key=key, user_id=user_id, amount="1", type="credit")
        seen = [
            (r.name, r.levelname, r.operation, r.kind, r.attempt, r.backoff, r.idempotency_key)  # type: ignore[attr-defined]
            for r in _records(caplog)
        ]
        assert [
            ("dynaledger.retry", "INFO", "transact", "contention", 1, 0.0, key),
            ("dynaledger.retry", "INFO", "transact", "unavailable", 2, 0.0, key),
        ] == seen
        assert (
            f"transact: attempt 1 of 8 failed (contention), retrying in 0.000 s "
            f"(idempotency key {key!r})"
        ) == _records(caplog)[0].getMessage()

    def test_an_exhausted_budget_is_a_warning(
        self, proxied: Proxied, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Giving up logs one WARNING with the error's message, after the retries' INFO."""
        caplog.set_level(logging.DEBUG, logger="dynaledger")
        policy = RetryPolicy(max_attempts=2, base_delay=0, max_delay=0)
        through, _ = proxied(faultproxy.scripted(*[faultproxy.CONFLICT] * 2), retry=policy)
        key = unique("k")
        with pytest.raises(ConcurrencyError) as caught:
            through.transact(idempotency_key=key, user_id=unique("u"), amount="1", type="credit")
        assert [("INFO", 1), ("WARNING", 2)] == [
            (r.levelname, r.attempt)
            for r in _records(caplog)  # type: ignore[attr-defined]
        ]
        assert str(caught.value) == _records(caplog)[-1].getMessage()

    def test_a_lost_reply_recognised_as_own_success_is_logged(
        self, ledger: Ledger, proxied: Proxied, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The retry after a dropped reply finds its own record: one INFO on dynaledger.outcome."""
        caplog.set_level(logging.DEBUG, logger="dynaledger")
        through, _ = proxied(faultproxy.scripted(faultproxy.DROP_AFTER_COMMIT))
        user_id, key = unique("l"), unique("k")
        ledger.create_user(user_id)
        result = through.transact(idempotency_key=key, user_id=user_id, amount="1", type="debit")
        outcome = [r for r in _records(caplog) if r.name == "dynaledger.outcome"]
        assert (False, 1) == (result.replayed, len(outcome))
        assert (
            "transact: an earlier attempt of this call was applied though its reply was lost "
            f"(idempotency key {key!r})"
        ) == outcome[0].getMessage()

    def test_a_replay_by_another_call_is_not_logged_as_own_success(
        self, ledger: Ledger, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A plain replay (another call's record) logs nothing."""
        caplog.set_level(logging.DEBUG, logger="dynaledger")
        user_id, key = unique("l"), unique("k")
        ledger.create_user(user_id)
        ledger.transact(idempotency_key=key, user_id=user_id, amount="1", type="credit")
        assert ledger.transact(idempotency_key=key, user_id=user_id, amount="1",
                               type="credit").replayed  # fmt: skip
        assert [] == _records(caplog)


class TestMigrations:
    def test_each_applied_revision_is_logged(
        self, make_ledger: Callable[..., Ledger], caplog: pytest.LogCaptureFixture
    ) -> None:
        """migrate logs one INFO per revision it applies, and nothing when up to date."""
        caplog.set_level(logging.DEBUG, logger="dynaledger")
        ledger = make_ledger()
        ledger.migrate()
        ledger.migrate()
        assert [
            ("dynaledger.migrations", "INFO", "applied revision 0001: Create the Users table, "
             "keyed by userId."),
            ("dynaledger.migrations", "INFO", "applied revision 0002: Create the Transactions "
             "table, keyed by idempotencyKey, with the userId-timestamp index."),
        ] == [(r.name, r.levelname, r.getMessage()) for r in _records(caplog)]  # fmt: skip
