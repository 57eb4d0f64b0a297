"""Deadlines, the connection pool, botocore settings, and closing a ledger."""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
from botocore.config import Config
from pynamodb.connection import Connection
from pynamodb.exceptions import TransactWriteError
from pynamodb.signals import pre_dynamodb_send

from dynaledger import Ledger, Leg, RetryPolicy
from dynaledger.errors import ConcurrencyError, ConfigurationError, ServiceUnavailable
from dynaledger.models import signals_heard
from tests import faultproxy
from tests.conftest import Proxied, unique


class _SlowBackoff(RetryPolicy):
    """Always back off for 5 s: longer than the deadlines below."""

    def backoff(self, attempt: int) -> float:
        return 5.0


class TestDeadline:
    def test_a_stalled_reply_ends_at_the_deadline_not_the_read_timeout(
        self, ledger: Ledger, proxied: Proxied
    ) -> None:
        """With a 60 s read timeout and a 0.5 s deadline, a held read fails at the deadline.

        The proxy holds the GetItem for up to 20 s: a client still waiting then
        would get its reply and not raise.
        """
        hold = faultproxy.Hold("GetItem")
        through, _ = proxied(hold, deadline=0.5, read_timeout=60)
        try:
            with pytest.raises(ServiceUnavailable) as caught:
                through.get_user_balance(unique("d"))
        finally:
            hold.release.set()
        error = caught.value
        assert (True, True, "get_user_balance") == (
            hold.arrived.is_set(), error.deadline_exceeded, error.operation,
        )  # fmt: skip
        assert str(error).startswith(
            "get_user_balance: DynamoDB did not answer or kept failing within its deadline of 0.5 s"
        )
        assert str(error).endswith("; try again later")

    @pytest.mark.parametrize("operation", ["hold", "post", "set_credit_limit", "refund"])
    def test_a_held_write_of_any_money_operation_ends_at_the_deadline(
        self, ledger: Ledger, proxied: Proxied, operation: str
    ) -> None:
        """The proxy holds TransactWriteItems: each operation raises ServiceUnavailable at the
        0.5 s deadline (not the 60 s read timeout), naming itself."""
        user, other, original = unique("d"), unique("d"), unique("k")
        ledger.create_user(user)
        ledger.create_user(other)
        ledger.transact(idempotency_key=original, user_id=user, amount="1", type="debit")
        hold = faultproxy.Hold("TransactWriteItems")
        through, _ = proxied(hold, deadline=0.5, read_timeout=60)
        calls: dict[str, Callable[[], object]] = {
            "hold": lambda: through.hold(idempotency_key=unique("h"), user_id=user, amount="1"),
            "post": lambda: through.post(idempotency_key=unique("p"), legs=[
                Leg(user, "1", "debit"), Leg(other, "1", "credit")]),
            "set_credit_limit": lambda: through.set_credit_limit(
                idempotency_key=unique("l"), user_id=user, limit="5"),
            "refund": lambda: through.refund(idempotency_key=unique("r"), of=original),
        }  # fmt: skip
        try:
            with pytest.raises(ServiceUnavailable) as caught:
                calls[operation]()
        finally:
            hold.release.set()
        assert (True, True, operation) == (
            hold.arrived.is_set(), caught.value.deadline_exceeded, caught.value.operation,
        )  # fmt: skip

    def test_a_backoff_that_would_pass_the_deadline_is_not_slept(
        self, ledger: Ledger, proxied: Proxied
    ) -> None:
        """A 5 s backoff against a 1 s deadline: ConcurrencyError after the first conflict."""
        policy = _SlowBackoff(max_attempts=2)
        through, proxy = proxied(faultproxy.scripted(*[faultproxy.CONFLICT] * 2), retry=policy,
                                 deadline=1)  # fmt: skip
        user_id = unique("d")
        ledger.create_user(user_id)
        with pytest.raises(ConcurrencyError) as caught:
            through.transact(idempotency_key=unique("k"), user_id=user_id, amount="1",
                             type="credit")  # fmt: skip
        assert (1, True, 1) == (
            proxy.injected[faultproxy.CONFLICT], caught.value.deadline_exceeded,
            caught.value.attempts,
        )  # fmt: skip

    def test_calls_within_the_deadline_are_unaffected(
        self, ledger: Ledger, proxied: Proxied
    ) -> None:
        """Retries that fit the deadline still apply the movement once."""
        through, proxy = proxied(faultproxy.scripted(faultproxy.CONFLICT), deadline=30)
        user_id = unique("d")
        ledger.create_user(user_id)
        through.transact(idempotency_key=unique("k"), user_id=user_id, amount="2", type="debit")
        assert (1, Decimal("98.00")) == (
            proxy.injected[faultproxy.CONFLICT], ledger.get_user_balance(user_id).amount,
        )  # fmt: skip

    @pytest.mark.parametrize("deadline", [0, -1, float("nan"), float("inf"), "5", True])
    def test_a_bad_deadline_is_a_validation_error(
        self, make_ledger: Callable[..., Ledger], deadline: object
    ) -> None:
        """A deadline must be a finite number of seconds above zero."""
        with pytest.raises(ValueError, match=r"^deadline: must be a number of seconds"):
            make_ledger(deadline=deadline)


class TestPool:
    def test_the_pool_size_reaches_botocore(self, make_ledger: Callable[..., Ledger]) -> None:
        """max_pool_connections is 50 by default and configurable."""
        sizes = [
            make_ledger().botocore_client.meta.config.max_pool_connections,
            make_ledger(max_pool_connections=7).botocore_client.meta.config.max_pool_connections,
        ]
        assert [50, 7] == sizes

    def test_threads_beyond_the_pool_open_connections_that_are_discarded(
        self, ledger: Ledger, proxied: Proxied, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Four reads at once through a pool of 2 discard 2 connections; a pool of 4 none."""
        caplog.set_level(logging.WARNING, logger="urllib3.connectionpool")
        discarded = []
        for size in (2, 4):
            arrived = threading.Barrier(5)

            def gather(operation: str, arrived: threading.Barrier = arrived) -> str | None:
                if operation == "GetItem":
                    arrived.wait(20)  # hold until all four are in flight at once
                return None

            through, _ = proxied(gather, max_pool_connections=size)
            caplog.clear()
            threads = [
                threading.Thread(target=through.get_user_balance, args=(ledger_user(ledger),))
                for _ in range(4)
            ]
            for thread in threads:
                thread.start()
            arrived.wait(20)
            for thread in threads:
                thread.join()
            discarded.append(sum("pool is full" in r.getMessage() for r in caplog.records))
        assert [2, 0] == discarded


def ledger_user(ledger: Ledger) -> str:
    user_id = unique("p")
    ledger.create_user(user_id)
    return user_id


class TestBotocoreConfig:
    def test_a_botocore_config_is_merged_but_retries_stay_the_ledgers(
        self, make_ledger: Callable[..., Ledger]
    ) -> None:
        """User agent and connect timeout come from the Config; one botocore attempt remains."""
        extra = Config(user_agent_extra="casino/1.0", connect_timeout=2,
                       retries={"max_attempts": 5})  # fmt: skip
        ledger = make_ledger(botocore_config=extra, read_timeout=7)
        config = ledger.botocore_client.meta.config
        assert ("casino/1.0", 2, 7, {"total_max_attempts": 1, "mode": "standard"}) == (
            config.user_agent_extra, config.connect_timeout, config.read_timeout, config.retries,
        )  # fmt: skip

    def test_requests_carry_the_merged_settings(
        self, ledger: Ledger, make_ledger: Callable[..., Ledger]
    ) -> None:
        """The user agent of the Config is on the wire."""
        through = make_ledger(
            table_prefix=ledger.settings.table_prefix,
            botocore_config=Config(user_agent_extra="casino/1.0"),
        )
        agents: list[str] = []

        def record(request: Any, **kwargs: Any) -> None:
            agents.append(request.headers["User-Agent"].decode())

        through.botocore_client.meta.events.register("before-send.dynamodb", record)
        through.ping()
        assert [True, True, True] == ["casino/1.0" in agent for agent in agents]


class TestClose:
    def test_a_closed_ledger_refuses_calls(
        self, ledger: Ledger, make_ledger: Callable[..., Ledger]
    ) -> None:
        """After close(), a call raises ConfigurationError and sends nothing."""
        closed = make_ledger(table_prefix=ledger.settings.table_prefix)
        closed.close()
        with pytest.raises(ConfigurationError, match=r"^this Ledger was closed$"):
            closed.get_user_balance("anyone")

    def test_a_ledger_is_a_context_manager_that_closes(
        self, ledger: Ledger, make_ledger: Callable[..., Ledger]
    ) -> None:
        """Leaving the with-block closes the ledger; inside it works."""
        user_id = ledger_user(ledger)
        with make_ledger(table_prefix=ledger.settings.table_prefix) as scoped:
            inside = scoped.get_user_balance(user_id).amount
        with pytest.raises(ConfigurationError):
            scoped.get_user_balance(user_id)
        assert Decimal("100.00") == inside


class TestPynamoDBSignals:
    def test_requests_send_pynamodbs_signals_only_while_someone_listens(
        self, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A listener to ``pre_dynamodb_send`` hears reads and writes; with none, they skip
        PynamoDB's ``dispatch`` (a UUID and two signals per request) and give the same results.
        """
        dispatched: list[str] = []
        dispatch = Connection.dispatch

        def counting_dispatch(
            connection: Connection, operation: str, kwargs: dict[str, Any]
        ) -> dict[str, Any]:
            dispatched.append(operation)
            return dispatch(connection, operation, kwargs)

        monkeypatch.setattr(Connection, "dispatch", counting_dispatch)
        heard: list[str] = []

        def listener(sender: object, operation_name: str, **kwargs: object) -> None:
            heard.append(operation_name)

        def credit_and_read(user_id: str) -> tuple[Decimal, Decimal]:
            ledger.create_user(user_id, balance="5")
            credit = ledger.transact(idempotency_key=unique("k"), user_id=user_id, amount="2",
                                     type="credit")  # fmt: skip
            return credit.amount, ledger.get_user_balance(user_id).amount

        assert not signals_heard()
        unheard = credit_and_read(unique("quiet"))
        assert [] == dispatched
        pre_dynamodb_send.connect(listener)
        try:
            listened = credit_and_read(unique("heard"))
        finally:
            pre_dynamodb_send.disconnect(listener)
        expected = ["TransactWriteItems", "TransactWriteItems", "GetItem"]
        assert (expected, expected) == (dispatched, heard)
        assert ((Decimal("2.00"), Decimal("7.00")),) * 2 == (unheard, listened)

    def test_pynamodbs_debug_log_still_shows_each_request_when_on(
        self, ledger: Ledger, caplog: pytest.LogCaptureFixture
    ) -> None:
        """With ``pynamodb.connection.base`` at DEBUG, requests go through ``dispatch``,
        which logs them."""
        user_id = unique("logged")
        ledger.create_user(user_id, balance="5")
        with caplog.at_level(logging.DEBUG, logger="pynamodb.connection.base"):
            ledger.get_user_balance(user_id)
        calls = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Calling ")]
        assert 1 == len(calls)
        assert calls[0].startswith("Calling GetItem with arguments")
        assert user_id in calls[0]


class TestTransactWriteItems:
    def test_sends_what_pynamodbs_sends_and_fails_as_it_fails(self, ledger: Ledger) -> None:
        """The ledgers' ``transact_write_items`` sends the request PynamoDB's sends for
        items of all four kinds (checks, deletes, puts, updates, in that order), and a
        cancelled one raises ``TransactWriteError`` with the same reasons."""
        connection = ledger._ctx.models.connection
        wire = ledger._ctx.wire
        events = ledger.botocore_client.meta.events
        sent: list[dict[str, Any]] = []

        def capture(params: dict[str, Any], **kwargs: object) -> None:
            sent.append(copy.deepcopy(params))

        def items(prefix: str, exists: str) -> dict[str, Any]:
            key = {wire.user_key: {"S": exists}}
            return {
                "condition_check_items": [{"TableName": wire.users_table, "Key": key,
                                           "ConditionExpression": "attribute_exists(#u)",
                                           "ExpressionAttributeNames": {"#u": wire.user_key}}],
                "delete_items": [{"TableName": wire.users_table,
                                  "Key": {wire.user_key: {"S": f"{prefix}-gone"}}}],
                "put_items": [{"TableName": wire.users_table,
                               "Item": {wire.user_key: {"S": f"{prefix}-new"}}}],
                "update_items": [{"TableName": wire.users_table,
                                  "Key": {wire.user_key: {"S": f"{prefix}-updated"}},
                                  "UpdateExpression": "SET #b = :b",
                                  "ExpressionAttributeNames": {"#b": "balance"},
                                  "ExpressionAttributeValues": {":b": {"N": "1"}}}],
            }  # fmt: skip

        present = unique("present")
        ledger.create_user(present, balance="1")
        events.register("before-parameter-build.dynamodb.TransactWriteItems", capture)
        try:
            for send in (connection.transact_write_items,
                         partial(Connection.transact_write_items, connection)):  # fmt: skip
                send(**items("same", present), return_consumed_capacity="NONE")
            failures = []
            absent = unique("absent")
            for send in (connection.transact_write_items,
                         partial(Connection.transact_write_items, connection)):  # fmt: skip
                with pytest.raises(TransactWriteError) as raised:
                    send(**items("failing", absent))
                failures.append([r.code if r else None for r in raised.value.cancellation_reasons])
        finally:
            events.unregister("before-parameter-build.dynamodb.TransactWriteItems", capture)
        assert 4 == len(sent)
        assert sent[0] == sent[1]
        assert sent[2] == sent[3]
        kinds = [next(iter(item)) for item in sent[0]["TransactItems"]]
        assert ["ConditionCheck", "Delete", "Put", "Update"] == kinds
        assert [["ConditionalCheckFailed", None, None, None]] * 2 == failures
