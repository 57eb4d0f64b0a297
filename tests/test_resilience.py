"""One request per operation, and retries that are safe under injected faults."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)
from pynamodb.exceptions import GetError

from dynaledger import Ledger, Leg, RetryPolicy
from dynaledger.errors import (
    ConcurrencyError,
    ConfigurationError,
    IdempotencyConflict,
    InsufficientFunds,
    LedgerError,
    ServiceUnavailable,
    UserNotFound,
    ValidationError,
)
from dynaledger.services._core import new_request_id, transient_kind, translate
from tests import faultproxy
from tests.conftest import RequestCounter, unique


class TestOneRoundTrip:
    @pytest.fixture
    def counted(
        self, ledger: Ledger, count_requests: Callable[[Ledger], RequestCounter]
    ) -> tuple[Ledger, RequestCounter]:
        return ledger, count_requests(ledger)

    def _user(self, ledger: Ledger, balance: str = "100") -> str:
        user_id = unique("rt")
        ledger.create_user(user_id, balance=balance)
        return user_id

    def test_each_operation_costs_exactly_its_requests(
        self, counted: tuple[Ledger, RequestCounter]
    ) -> None:
        """Success and replay cost one request; insufficient funds costs two (it is recorded).
        A replay of a void once its hold is closed is one read of its key."""
        ledger, counter = counted
        payer, payee = self._user(ledger), self._user(ledger)
        key, tkey = unique("k"), unique("t")
        hkey, ckey, vkey = unique("h"), unique("c"), unique("v")
        operations: dict[str, Callable[[], object]] = {
            "balance": lambda: ledger.get_user_balance(payer),
            "credit": lambda: ledger.transact(idempotency_key=key, user_id=payer, amount="1",
                                              type="credit"),
            "replay": lambda: ledger.transact(idempotency_key=key, user_id=payer, amount="1",
                                              type="credit"),
            "transfer": lambda: ledger.transfer(idempotency_key=tkey, from_user_id=payer,
                                                to_user_id=payee, amount="1"),
            "history": lambda: ledger.history(payer, limit=10),
            "hold": lambda: ledger.hold(idempotency_key=hkey, user_id=payer, amount="1",
                                        to_user_id=payee, timeout=60),
            "hold replay": lambda: ledger.hold(idempotency_key=hkey, user_id=payer, amount="1",
                                               to_user_id=payee, timeout=60),
            "capture": lambda: ledger.capture(idempotency_key=ckey, hold_id=hkey, amount="0.5",
                                              final=False),
            "capture replay": lambda: ledger.capture(idempotency_key=ckey, hold_id=hkey,
                                                     amount="0.5", final=False),
            "balance with a hold": lambda: ledger.get_user_balance(payer),
            "void": lambda: ledger.void(idempotency_key=vkey, hold_id=hkey),
            "void replay": lambda: ledger.void(idempotency_key=vkey, hold_id=hkey),
        }  # fmt: skip
        costs = {}
        for name, operation in operations.items():
            counter.reset()
            operation()
            costs[name] = dict(counter.by_operation)
        assert {
            "balance": {"GetItem": 1},
            "credit": {"TransactWriteItems": 1},
            "replay": {"TransactWriteItems": 1},
            "transfer": {"TransactWriteItems": 1},
            "history": {"Query": 1},
            # A capture or void names only the hold; this ledger placed it, so it knows the
            # holder and payee the write needs (tests/test_holds.py: a ledger that does not
            # reads the hold first). Once the hold is closed, a replay reads its key.
            "hold": {"TransactWriteItems": 1},
            "hold replay": {"TransactWriteItems": 1},
            "capture": {"TransactWriteItems": 1},
            "capture replay": {"TransactWriteItems": 1},
            "balance with a hold": {"GetItem": 1},
            "void": {"TransactWriteItems": 1},
            "void replay": {"BatchGetItem": 1},
        } == costs

    def test_the_benchmarks_request_table_holds_exactly(self, ledger: Ledger) -> None:
        """The figures ``python -m benchmarks`` prints for requests per operation, asserted."""
        from benchmarks.run import requests_per_operation

        assert {
            "get_user_balance": 1,
            "transact (credit)": 1,
            "transact (debit)": 1,
            "replay of an applied key": 1,
            "reused key, other amount (IdempotencyConflict)": 1,
            "insufficient funds (refusal recorded)": 2,
            "transfer": 1,
            "history page": 1,
            "hold": 1,
            "replay of a hold": 1,
            "capture": 1,
            "replay of a capture": 1,
            "void": 1,
            "replay of a void (the hold is closed: reads the key)": 1,
            "balance with a hold": 1,
            "capture by another process (reads the hold first)": 2,
            "set_credit_limit": 1,
            "replay of set_credit_limit": 1,
            "post (three legs)": 1,
            "replay of a post": 1,
            "refund": 1,
            "replay of a refund": 1,
            "refund by another process (reads the original first)": 2,
        } == requests_per_operation(ledger)

    def test_refusals_cost_one_request_and_insufficient_funds_two(
        self, counted: tuple[Ledger, RequestCounter]
    ) -> None:
        """Conflicts and unknown users are told apart without a read; a refusal is recorded."""
        ledger, counter = counted
        user_id, key = self._user(ledger, "1"), unique("k")
        ledger.transact(idempotency_key=key, user_id=user_id, amount="1", type="credit")
        costs = {}
        for name, call, error in [
            ("conflict", lambda: ledger.transact(idempotency_key=key, user_id=user_id,
                                                 amount="2", type="credit"), IdempotencyConflict),
            ("unknown", lambda: ledger.transact(idempotency_key=unique("k"), user_id="ghost-rt",
                                                amount="2", type="credit"), UserNotFound),
            ("overdraft", lambda: ledger.transact(idempotency_key=unique("k"), user_id=user_id,
                                                  amount="50", type="debit"), InsufficientFunds),
        ]:  # fmt: skip
            counter.reset()
            with pytest.raises(error):
                call()
            costs[name] = counter.total
        assert {"conflict": 1, "unknown": 1, "overdraft": 2} == costs

    def test_credit_limits_cost_no_extra_request(
        self, counted: tuple[Ledger, RequestCounter]
    ) -> None:
        """set_credit_limit and its replay cost one request each; a debit, transfer or hold
        into the limit one; a refusal past it two (recorded), as without a limit."""
        ledger, counter = counted
        user_id, payee = self._user(ledger, "0"), self._user(ledger, "0")
        key = unique("l")
        operations: dict[str, Callable[[], object]] = {
            "set_credit_limit": lambda: ledger.set_credit_limit(idempotency_key=key,
                                                                user_id=user_id, limit="100"),
            "replay": lambda: ledger.set_credit_limit(idempotency_key=key, user_id=user_id,
                                                      limit="100"),
            "debit into the limit": lambda: ledger.transact(idempotency_key=unique("k"),
                                                            user_id=user_id, amount="40",
                                                            type="debit"),
            "transfer": lambda: ledger.transfer(idempotency_key=unique("t"), from_user_id=user_id,
                                                to_user_id=payee, amount="40"),
            "hold": lambda: ledger.hold(idempotency_key=unique("h"), user_id=user_id,
                                        amount="20", timeout=60),
        }  # fmt: skip
        costs = {}
        for name, operation in operations.items():
            counter.reset()
            operation()
            costs[name] = dict(counter.by_operation)
        counter.reset()
        with pytest.raises(InsufficientFunds):
            ledger.transact(idempotency_key=unique("k"), user_id=user_id, amount="0.01",
                            type="debit")  # fmt: skip
        costs["refusal past the limit"] = dict(counter.by_operation)
        one = {"TransactWriteItems": 1}
        assert {
            "set_credit_limit": one, "replay": one, "debit into the limit": one,
            "transfer": one, "hold": one, "refusal past the limit": {"TransactWriteItems": 2},
        } == costs  # fmt: skip
        assert Decimal("-100.00") == ledger.get_user_balance(user_id).amount

    def test_a_foreign_currency_costs_one_more_request_unless_named(
        self, counted: tuple[Ledger, RequestCounter]
    ) -> None:
        """With no ``currency`` a EUR account is learnt from the cancellation: 2 requests."""
        ledger, counter = counted
        user_id = unique("eur")
        ledger.create_user(user_id, balance="10", currency="EUR")
        costs = []
        for currency in (None, "EUR"):
            counter.reset()
            ledger.transact(idempotency_key=unique("k"), user_id=user_id, amount="1",
                            type="debit", currency=currency)  # fmt: skip
            costs.append(counter.total)
        assert [2, 1] == costs


def _account(ledger: Ledger, balance: str = "100") -> str:
    user_id = unique("f")
    ledger.create_user(user_id, balance=balance)
    return user_id


class TestRetries:
    @pytest.mark.parametrize(
        "fault",
        [
            faultproxy.CONFLICT,
            faultproxy.THROTTLE,
            faultproxy.THROUGHPUT,
            faultproxy.SERVER_ERROR,
            faultproxy.GATEWAY_ERROR,  # regression: a bare 502 page was not retried
        ],
    )
    def test_transient_faults_are_retried_and_apply_once(
        self, ledger: Ledger, proxied: Callable[..., tuple[Ledger, faultproxy.FaultProxy]],
        fault: str,
    ) -> None:  # fmt: skip
        """Two injected faults, then success: the debit applies once, after two retries."""
        through, proxy = proxied(faultproxy.scripted(fault, fault))
        user_id = _account(ledger)
        result = through.transact(idempotency_key=unique("k"), user_id=user_id, amount="10",
                                  type="debit")  # fmt: skip
        assert (False, 2) == (result.replayed, proxy.injected[fault])
        assert Decimal("90.00") == ledger.get_user_balance(user_id).amount
        assert 2 == sum(through.stats.retries.values())

    def test_conflicts_on_a_transfer_are_retried(
        self, ledger: Ledger, proxied: Callable[..., tuple[Ledger, faultproxy.FaultProxy]]
    ) -> None:
        """A transfer cancelled by conflicts goes through on a later attempt, once."""
        through, proxy = proxied(faultproxy.scripted(*[faultproxy.CONFLICT] * 3))
        payer, payee = _account(ledger), _account(ledger)
        through.transfer(idempotency_key=unique("t"), from_user_id=payer, to_user_id=payee,
                         amount="5")  # fmt: skip
        assert (Decimal("95.00"), Decimal("105.00")) == (
            ledger.get_user_balance(payer).amount, ledger.get_user_balance(payee).amount,
        )  # fmt: skip
        assert 3 == proxy.injected[faultproxy.CONFLICT]

    def test_conflicts_past_the_budget_raise_concurrency_error_and_the_key_stays_usable(
        self, ledger: Ledger, proxied: Callable[..., tuple[Ledger, faultproxy.FaultProxy]]
    ) -> None:
        """Conflicts on every attempt end in ConcurrencyError; a later retry applies once."""
        policy = RetryPolicy(max_attempts=3, base_delay=0, max_delay=0)
        through, _ = proxied(faultproxy.scripted(*[faultproxy.CONFLICT] * 3), retry=policy)
        user_id, key = _account(ledger), unique("k")
        with pytest.raises(ConcurrencyError):
            through.transact(idempotency_key=key, user_id=user_id, amount="10", type="debit")
        assert Decimal("100.00") == ledger.get_user_balance(user_id).amount
        result = through.transact(idempotency_key=key, user_id=user_id, amount="10", type="debit")
        assert (False, Decimal("90.00")) == (
            result.replayed, ledger.get_user_balance(user_id).amount,
        )  # fmt: skip
        assert 1 == through.stats.exhausted

    def test_server_errors_past_the_budget_raise_service_unavailable(
        self, ledger: Ledger, proxied: Callable[..., tuple[Ledger, faultproxy.FaultProxy]]
    ) -> None:
        """Persistent 500s end in ServiceUnavailable, not a botocore exception."""
        policy = RetryPolicy(max_attempts=2, base_delay=0, max_delay=0)
        through, _ = proxied(faultproxy.scripted(*[faultproxy.SERVER_ERROR] * 2), retry=policy)
        with pytest.raises(ServiceUnavailable):
            through.transact(idempotency_key=unique("k"), user_id=_account(ledger), amount="1",
                             type="credit")  # fmt: skip

    def test_an_unreachable_endpoint_raises_service_unavailable(self) -> None:
        """A closed port is retried, then reported as ServiceUnavailable."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        ledger = Ledger(f"http://127.0.0.1:{port}", retry=RetryPolicy(2, 0, 0), connect_timeout=1)
        with pytest.raises(ServiceUnavailable):
            ledger.get_user_balance("anyone")


class TestAmbiguousFailures:
    @pytest.mark.parametrize("fault", [faultproxy.DROP_AFTER_COMMIT, faultproxy.STALL_AFTER_COMMIT])
    def test_a_lost_reply_after_commit_is_recognized_as_this_calls_own_success(
        self, ledger: Ledger, proxied: Callable[..., tuple[Ledger, faultproxy.FaultProxy]],
        fault: str,
    ) -> None:  # fmt: skip
        """The server applied it, the reply never came: the retry finds its own record, once."""
        through, proxy = proxied(faultproxy.scripted(fault), read_timeout=0.5)
        user_id, key = _account(ledger), unique("k")
        result = through.transact(idempotency_key=key, user_id=user_id, amount="10", type="debit")
        assert (False, 1) == (result.replayed, proxy.injected[fault])
        assert Decimal("90.00") == ledger.get_user_balance(user_id).amount
        again = ledger.transact(idempotency_key=key, user_id=user_id, amount="10", type="debit")
        assert (True, result.timestamp) == (again.replayed, again.timestamp)
        assert Decimal("90.00") == ledger.get_user_balance(user_id).amount

    def test_a_lost_reply_to_a_recorded_refusal_still_refuses(
        self, ledger: Ledger, proxied: Callable[..., tuple[Ledger, faultproxy.FaultProxy]]
    ) -> None:
        """The refusal's record committed but its reply was lost: the caller is still refused."""
        # The first TransactWriteItems is the debit (the server cancels it); the second records it.
        through, proxy = proxied(faultproxy.scripted(None, faultproxy.DROP_AFTER_COMMIT))
        user_id, key = _account(ledger, "1"), unique("k")
        with pytest.raises(InsufficientFunds):
            through.transact(idempotency_key=key, user_id=user_id, amount="5", type="debit")
        assert 1 == proxy.injected[faultproxy.DROP_AFTER_COMMIT]
        with pytest.raises(InsufficientFunds):
            ledger.transact(idempotency_key=key, user_id=user_id, amount="5", type="debit")


class TestRefundAndPostCosts:
    """Requests per path of ``refund`` and ``post`` (see the README's "Refunds" and "Postings")."""

    def test_each_path_costs_exactly_its_requests(
        self, ledger: Ledger, count_requests: Callable[[Ledger], RequestCounter]
    ) -> None:
        """A refund of a movement this ledger wrote is one write, its replay and a key reused
        too; one the original cannot cover (as known) reads the original and the key. A
        posting is one write, its replay too; refusals for funds add the recorded refusal."""
        counter = count_requests(ledger)
        house, player, rake = _account(ledger), _account(ledger, "0"), _account(ledger, "0")
        bet, rkey, pkey, win = unique("b"), unique("r"), unique("p"), unique("w")
        ledger.transact(idempotency_key=bet, user_id=house, amount="10", type="debit")
        ledger.transact(idempotency_key=win, user_id=player, amount="50", type="credit")
        legs = [Leg(house, "20", "debit"), Leg(player, "19", "credit"), Leg(rake, "1", "credit")]
        too_much = [Leg(rake, "500", "debit"), Leg(player, "500", "credit")]
        operations: dict[str, Callable[[], object]] = {
            "refund": lambda: ledger.refund(idempotency_key=rkey, of=bet, amount="4"),
            "refund replay": lambda: ledger.refund(idempotency_key=rkey, of=bet, amount="4"),
            "refund conflict": lambda: ledger.refund(idempotency_key=rkey, of=bet, amount="5"),
            "refund exceeded": lambda: ledger.refund(idempotency_key=unique("r"), of=bet,
                                                     amount="7"),
            "post": lambda: ledger.post(idempotency_key=pkey, legs=legs),
            "post replay": lambda: ledger.post(idempotency_key=pkey, legs=legs),
            "post refused": lambda: ledger.post(idempotency_key=unique("p"), legs=too_much),
            "post unknown": lambda: ledger.post(idempotency_key=unique("p"), legs=[
                Leg(house, "1", "debit"), Leg("ghost-rt", "1", "credit")]),
            "refund refused": lambda: ledger.refund(idempotency_key=unique("r"), of=pkey),
            "refund of a posting": lambda: ledger.refund(idempotency_key=unique("r"), of=pkey),
        }  # fmt: skip
        costs = {}
        for name, operation in operations.items():
            counter.reset()
            if name == "refund refused":  # the player spent its winnings: 19 cannot go back
                ledger.transact(idempotency_key=unique("s"), user_id=player, amount="60",
                                type="debit")  # fmt: skip
                counter.reset()
            if name == "refund of a posting":
                ledger.transact(idempotency_key=unique("s"), user_id=player, amount="60",
                                type="credit")  # fmt: skip
                counter.reset()
            with contextlib.suppress(LedgerError):
                operation()
            costs[name] = dict(counter.by_operation)
        assert {
            "refund": {"TransactWriteItems": 1},
            "refund replay": {"TransactWriteItems": 1},
            "refund conflict": {"TransactWriteItems": 1},
            "refund exceeded": {"BatchGetItem": 1},
            "post": {"TransactWriteItems": 1},
            "post replay": {"TransactWriteItems": 1},
            "post refused": {"TransactWriteItems": 2},
            "post unknown": {"TransactWriteItems": 1},
            "refund refused": {"TransactWriteItems": 2},
            "refund of a posting": {"TransactWriteItems": 1},
        } == costs

    @pytest.mark.parametrize("fault", [faultproxy.DROP_AFTER_COMMIT, faultproxy.STALL_AFTER_COMMIT])
    def test_a_lost_reply_is_recognized_as_the_calls_own_refund_and_posting(
        self, ledger: Ledger, proxied: Callable[..., tuple[Ledger, faultproxy.FaultProxy]],
        fault: str,
    ) -> None:  # fmt: skip
        """The write committed, the reply was lost: each retry finds its own record, once."""
        through, proxy = proxied(faultproxy.scripted(fault, fault), read_timeout=0.5)
        house, player = _account(ledger), _account(ledger, "0")
        pkey, rkey = unique("p"), unique("r")
        legs = [Leg(house, "30", "debit"), Leg(player, "30", "credit")]
        posted = through.post(idempotency_key=pkey, legs=legs)
        refunded = through.refund(idempotency_key=rkey, of=pkey)
        assert (False, False, 2) == (posted.replayed, refunded.replayed, proxy.injected[fault])
        assert [Decimal("100.00"), Decimal("0.00")] == [
            ledger.get_user_balance(user).amount for user in (house, player)
        ]
        again = ledger.refund(idempotency_key=rkey, of=pkey)
        assert (True, refunded.timestamp) == (again.replayed, again.timestamp)


def _client_error(code: str, status: int = 400, message: str = "m") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "GetItem",
    )


ENDPOINT = "http://127.0.0.1:1/"


class TestWhatIsRetried:
    @pytest.mark.parametrize(
        ("error", "kind"),
        [
            (EndpointConnectionError(endpoint_url=ENDPOINT), "unavailable"),
            (ConnectTimeoutError(endpoint_url=ENDPOINT), "unavailable"),
            (ReadTimeoutError(endpoint_url=ENDPOINT), "unavailable"),
            (ConnectionClosedError(endpoint_url=ENDPOINT), "unavailable"),
            (_client_error("ThrottlingException"), "contention"),
            (_client_error("ProvisionedThroughputExceededException"), "contention"),
            (_client_error("TransactionConflictException"), "contention"),
            (_client_error("RequestTimeout"), "unavailable"),
            (_client_error("InternalServerError", 500), "unavailable"),
            (_client_error("ServiceUnavailable", 503), "unavailable"),
            (_client_error("502", 502), "unavailable"),
        ],
    )
    def test_connection_failures_timeouts_throttling_conflicts_and_5xx_are_transient(
        self, error: Exception, kind: str
    ) -> None:
        """Each is retried, bare or wrapped by PynamoDB."""
        assert (kind, kind) == (
            transient_kind(error), transient_kind(GetError("Failed to get item", error)),
        )  # fmt: skip

    @pytest.mark.parametrize(
        ("error", "raised", "message"),
        [
            (
                NoCredentialsError(),
                ConfigurationError,
                "no usable AWS credentials (Unable to locate credentials): configure them "
                "through the environment, a profile or a role, or give a local endpoint",
            ),
            (
                _client_error("UnrecognizedClientException", 400,
                              "The security token included in the request is invalid."),
                ConfigurationError,
                "DynamoDB rejected the credentials (UnrecognizedClientException: "
                "The security token included in the request is invalid.)",
            ),
            (
                _client_error("AccessDeniedException", 400,
                              "User: app is not authorized to perform: dynamodb:GetItem"),
                ConfigurationError,
                "access denied (AccessDeniedException: User: app is not authorized to perform: "
                "dynamodb:GetItem); `dynaledger iam-policy` prints what the ledger needs",
            ),
            (
                _client_error("ValidationException", 400, "Item size has exceeded the maximum"),
                LedgerError,
                "DynamoDB refused the request (ValidationException: "
                "Item size has exceeded the maximum)",
            ),
            (
                ParamValidationError(report="Invalid type for parameter Key"),
                LedgerError,
                "cannot send the request to DynamoDB: Parameter validation failed:\n"
                "Invalid type for parameter Key",
            ),
        ],
    )  # fmt: skip
    def test_other_failures_are_not_retried_and_name_their_cause(
        self, error: Exception, raised: type[LedgerError], message: str
    ) -> None:
        """No credentials, rejected credentials, denied access, bad requests: reported at once."""
        wrapped = GetError("Failed to get item", error)
        translated = translate(wrapped)
        assert (None, None) == (transient_kind(error), transient_kind(wrapped))
        assert (raised, message, wrapped) == (type(translated), str(translated), translated.cause)

    def test_missing_credentials_fail_at_the_first_attempt_without_sending(
        self,
        dynamodb_endpoint: str,
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
        count_requests: Callable[[Ledger], RequestCounter],
    ) -> None:
        """A profile with no credentials: ConfigurationError after 1 attempt, 0 requests sent.

        AWS_PROFILE stops the placeholder credentials a loopback endpoint gets,
        so botocore's real chain runs; instance metadata is switched off (and
        pointed at a closed loopback port), so nothing leaves 127.0.0.1.
        """
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                     "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                     "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):  # fmt: skip
            monkeypatch.delenv(name, raising=False)
        (tmp_path / "config").write_text("[profile no-credentials]\nregion = us-east-1\n")
        for name, value in {
            "HOME": str(tmp_path),
            "AWS_CONFIG_FILE": str(tmp_path / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "absent"),
            "BOTO_CONFIG": str(tmp_path / "absent"),
            "AWS_PROFILE": "no-credentials",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:9/",
        }.items():
            monkeypatch.setenv(name, value)
        ledger = Ledger(dynamodb_endpoint, retry=RetryPolicy(max_attempts=8, base_delay=0))
        counter = count_requests(ledger)
        with pytest.raises(ConfigurationError) as caught:
            ledger.get_user_balance("anyone")
        assert str(caught.value).startswith(
            "no usable AWS credentials (Unable to locate credentials)"
        )
        assert (None, 1, {}, 0) == (
            ledger.settings.credentials, ledger.stats.attempts, ledger.stats.retries, counter.total,
        )  # fmt: skip


class TestEndpointSetting:
    @pytest.mark.parametrize(
        ("endpoint", "message"),
        [
            ("localhost:8000", "not 'localhost:8000'"),
            ("ftp://127.0.0.1:8000", "not 'ftp://127.0.0.1:8000'"),
            ("http://:8000", "not 'http://:8000'"),
            ("http://127.0.0.1:port", "'http://127.0.0.1:port' has an invalid port"),
        ],
    )
    def test_a_malformed_endpoint_is_a_validation_error_naming_it(
        self, endpoint: str, message: str
    ) -> None:
        """botocore's bare ValueError never escapes: ValidationError on endpoint_url instead."""
        rule = "must be an http:// or https:// URL with a host, such as http://localhost:8000"
        with pytest.raises(ValidationError) as caught:
            Ledger(endpoint)
        separator = "; " if "invalid port" in message else ", "
        assert ("endpoint_url", f"endpoint_url: {rule}{separator}{message}") == (
            caught.value.field, str(caught.value),
        )  # fmt: skip


class TestRequestIds:
    def test_ids_are_distinct_across_threads_and_32_hex_digits(self) -> None:
        """8 threads drawing 2,000 ids each get 16,000 distinct ids of 32 hex digits."""
        drawn: list[list[str]] = [[] for _ in range(8)]

        def draw(into: list[str]) -> None:
            into.extend(new_request_id() for _ in range(2000))

        threads = [threading.Thread(target=draw, args=(ids,)) for ids in drawn]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        every = [request_id for ids in drawn for request_id in ids]
        assert 16000 == len(set(every))
        assert all(re.fullmatch("[0-9a-f]{32}", request_id) for request_id in every)

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this system")
    # Python 3.12+ warns about fork in a threaded process; the child only writes and exits.
    @pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
    def test_a_forked_child_draws_other_ids_than_its_parent(self) -> None:
        """A forked child does not repeat its parent's next ids (no state shared by fork)."""
        reader, writer = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the child
            os.write(writer, new_request_id().encode())
            os._exit(0)
        os.close(writer)
        os.waitpid(child, 0)
        with os.fdopen(reader) as pipe:
            in_child = pipe.read()
        in_parent = new_request_id()
        assert 32 == len(in_child)
        assert in_child[:16] != in_parent[:16]
