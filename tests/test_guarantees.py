"""The ledger's guarantees, checked under load, injected faults, random sequences and bad input.

1. Exactly once per key.  2. Conservation.  3. No overdraft.
4. History agrees (reconcile OK, each applied entry listed once).
5. Clear failure: only dynaledger errors reach the caller.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
)

from dynaledger import Ledger, Leg, RetryPolicy
from dynaledger.errors import (
    ConcurrencyError,
    CurrencyMismatch,
    HoldClosed,
    HoldExceeded,
    HoldExpired,
    IdempotencyConflict,
    InsufficientFunds,
    NotRefundable,
    RefundExceeded,
    ServiceUnavailable,
    ValidationError,
)
from dynaledger.money import quantum
from tests import faultproxy, guarantees
from tests.conftest import FAST_RETRY

OPENING = Decimal("100")
FAULTS_IN_STATE_MACHINE = {
    faultproxy.CONFLICT: 0.15,
    faultproxy.THROTTLE: 0.05,
    faultproxy.SERVER_ERROR: 0.05,
    faultproxy.DROP_AFTER_COMMIT: 0.05,
}
amounts = st.integers(1, 15_000).map(lambda cents: Decimal(cents).scaleb(-2))
#: Credit limits: none (twice as likely), small and large; whole units fit every currency.
limits = st.sampled_from([Decimal(0), Decimal(0), Decimal(30), Decimal(200)])


class MachineClock:
    """The machine's clock: rules move it."""

    def __init__(self) -> None:
        self.now = datetime(2032, 1, 1, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


@attrs.define
class ModelHold:
    """What the model knows of one hold."""

    user: str
    payee: str | None
    amount: Decimal
    expires_at: datetime | None
    remaining: Decimal = attrs.field()
    captured: Decimal = Decimal(0)
    released: Decimal = Decimal(0)
    status: str = "active"

    @remaining.default
    def _all(self) -> Decimal:
        return self.amount

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@attrs.define
class ModelMovement:
    """What the model knows of one applied, refundable movement: its net legs and refunds."""

    kind: str
    legs: list[tuple[str, Decimal, str]]  # user, amount, credit or debit
    total: Decimal
    refunded: Decimal = Decimal(0)


class LedgerMachine(RuleBasedStateMachine):
    """Random sequences of ledger calls against a plain in-memory model of what must happen."""

    endpoint = ""
    prefix = ""
    fault_rates: dict[str, float] | None = None

    users = Bundle("users")
    keys = Bundle("keys")
    holds = Bundle("holds")
    closes = Bundle("closes")
    postings = Bundle("postings")
    refunds = Bundle("refunds")

    def __init__(self) -> None:
        super().__init__()
        self.run = uuid.uuid4().hex[:8]
        self.clock = MachineClock()
        self.direct = Ledger(self.endpoint, table_prefix=self.prefix, retry=FAST_RETRY,
                             clock=self.clock)  # fmt: skip
        self.proxy_context = None
        self.ledger = self.direct
        self.balance: dict[str, Decimal] = {}
        self.currency: dict[str, str] = {}
        self.limit: Counter[str] = Counter()  # credit limits: 0 unless set
        # Accounts whose limit was lowered below their debt, not back within it since.
        self.lowered: set[str] = set()
        self.recorded: dict[str, tuple[str, dict[str, Any], str]] = {}
        self.applied: Counter[str] = Counter()  # applied entries per user (expiries aside)
        self.count = 0
        self.hold_state: dict[str, ModelHold] = {}
        self.movements: dict[str, ModelMovement] = {}

    @initialize()
    def connect(self) -> None:
        if self.fault_rates:
            schedule = faultproxy.seeded(hash(self.run) % 2**32, self.fault_rates)
            self.proxy_context = faultproxy.fault_proxy(self.endpoint, schedule)
            proxy = self.proxy_context.__enter__()
            self.proxy_url = proxy.url
            self.ledger = Ledger(proxy.url, table_prefix=self.prefix, retry=FAST_RETRY,
                                 clock=self.clock)  # fmt: skip

    @initialize(target=users)
    def two_accounts(self) -> Any:
        """Every run starts with two USD accounts, so movements and holds begin at once."""
        first, second = self._fresh("user"), self._fresh("user")
        for user_id, balance in ((first, Decimal("100")), (second, Decimal("250.00"))):
            self.direct.create_user(user_id, balance=balance)
            self.balance[user_id], self.currency[user_id] = balance, "USD"
        return multiple(first, second)

    def teardown(self) -> None:
        if self.proxy_context is not None:
            self.proxy_context.__exit__(None, None, None)

    def _fresh(self, label: str) -> str:
        self.count += 1
        return f"{self.run}-{label}{self.count}"

    def _call(self, kind: str, args: dict[str, Any]) -> Any:
        """Call through the (maybe faulty) ledger; settle an unknown outcome without faults."""
        try:
            return getattr(self.ledger, kind)(**args)
        except (ConcurrencyError, ServiceUnavailable):
            return getattr(self.direct, kind)(**args)

    # Rules ------------------------------------------------------------------------------

    @rule(
        target=users,
        balance=st.none() | amounts,
        currency=st.sampled_from([None, None, "EUR", "JPY"]),
        limit=limits,
    )
    def create_user(self, balance: Decimal | None, currency: str | None, limit: Decimal) -> str:
        user_id = self._fresh("user")
        held = currency or "USD"
        if balance is not None:
            balance = balance.quantize(quantum(held), rounding="ROUND_DOWN")
        self.direct.create_user(user_id, balance=balance, currency=currency, credit_limit=limit)
        self.balance[user_id] = OPENING if balance is None else balance
        self.currency[user_id] = held
        self.limit[user_id] = limit
        return user_id

    @rule(target=keys, user=users, limit=limits)
    def set_credit_limit(self, user: str, limit: Decimal) -> Any:
        """Raised or lowered, below the debt too: only later debits feel it."""
        key = self._fresh("limit")
        args = {"idempotency_key": key, "user_id": user, "limit": limit}
        result = self._call("set_credit_limit", args)
        assert (limit, self.currency[user]) == (result.credit_limit, result.currency)
        self.limit[user] = limit
        if self.balance[user] < -limit:
            self.lowered.add(user)
        self.applied[user] += 1  # a "limit" entry in history
        self.recorded[key] = ("set_credit_limit", args, "applied")
        return key

    @rule(target=keys, user=users, amount=amounts, kind=st.sampled_from(["credit", "debit"]))
    def transact(self, user: str, amount: Decimal, kind: str) -> Any:
        key = self._fresh("key")
        args = {"idempotency_key": key, "user_id": user, "amount": amount, "type": kind}
        if amount != amount.quantize(quantum(self.currency[user]), rounding="ROUND_DOWN"):
            with pytest.raises(ValidationError):
                self._call("transact", args)
            return multiple()
        if kind == "debit" and self.balance[user] + self.limit[user] < amount:
            with pytest.raises(InsufficientFunds) as caught:
                self._call("transact", args)
            assert self.balance[user] == caught.value.balance
            self.recorded[key] = ("transact", args, "rejected")
            return key
        result = self._call("transact", args)
        assert (amount, self.currency[user]) == (result.amount, result.currency)
        self.balance[user] += amount if kind == "credit" else -amount
        self.applied[user] += 1
        self.recorded[key] = ("transact", args, "applied")
        self.movements[key] = ModelMovement("transact", [(user, amount, kind)], amount)
        return key

    @rule(target=keys, payer=users, payee=users, amount=amounts)
    def transfer(self, payer: str, payee: str, amount: Decimal) -> Any:
        key = self._fresh("transfer")
        args = {"idempotency_key": key, "from_user_id": payer, "to_user_id": payee,
                "amount": amount}  # fmt: skip
        held = self.currency[payer]
        if payer == payee or amount != amount.quantize(quantum(held), rounding="ROUND_DOWN"):
            with pytest.raises(ValidationError):
                self._call("transfer", args)
            return multiple()
        if self.currency[payee] != held:
            with pytest.raises(CurrencyMismatch):
                self._call("transfer", args)
            return multiple()
        if self.balance[payer] + self.limit[payer] < amount:
            with pytest.raises(InsufficientFunds):
                self._call("transfer", args)
            self.recorded[key] = ("transfer", args, "rejected")
            return key
        result = self._call("transfer", args)
        assert (payer, payee, amount) == (result.from_user_id, result.to_user_id, result.amount)
        self.balance[payer] -= amount
        self.balance[payee] += amount
        self.applied.update([payer, payee])
        self.recorded[key] = ("transfer", args, "applied")
        legs = [(payer, amount, "debit"), (payee, amount, "credit")]
        self.movements[key] = ModelMovement("transfer", legs, amount)
        return key

    @rule(key=keys)
    def replay(self, key: str) -> None:
        kind, args, outcome = self.recorded[key]
        if outcome == "rejected":
            with pytest.raises(InsufficientFunds):
                self._call(kind, args)
        else:
            assert self._call(kind, args).replayed

    @rule(key=keys, bump=st.integers(1, 5))
    def reuse_key_for_another_amount(self, key: str, bump: int) -> None:
        kind, args, _ = self.recorded[key]
        field = "limit" if kind == "set_credit_limit" else "amount"
        with pytest.raises(IdempotencyConflict) as caught:
            self._call(kind, {**args, field: args[field] + bump})
        assert (field,) == caught.value.fields

    @rule()
    def restart(self) -> None:
        """A new Ledger object: nothing the library remembers in memory may matter."""
        url = self.ledger.settings.endpoint_url
        self.ledger = Ledger(url, table_prefix=self.prefix, retry=FAST_RETRY, clock=self.clock)

    # Holds ------------------------------------------------------------------------------

    @rule(
        targets=(keys, holds),
        user=users,
        payee=st.none() | users,
        amount=amounts,
        timeout=st.sampled_from([None, 5, 30]),
    )
    def hold(self, user: str, payee: str | None, amount: Decimal, timeout: int | None) -> Any:
        key = self._fresh("hold")
        args = {"idempotency_key": key, "user_id": user, "amount": amount,
                "to_user_id": payee, "timeout": timeout}  # fmt: skip
        held = self.currency[user]
        if payee == user or amount != amount.quantize(quantum(held), rounding="ROUND_DOWN"):
            with pytest.raises(ValidationError):
                self._call("hold", args)
            return multiple()
        if payee is not None and self.currency[payee] != held:
            with pytest.raises(CurrencyMismatch):
                self._call("hold", args)
            return multiple()
        if self.balance[user] + self.limit[user] < amount:
            with pytest.raises(InsufficientFunds) as caught:
                self._call("hold", args)
            assert self.balance[user] == caught.value.balance
            self.recorded[key] = ("hold", args, "rejected")
            return key
        result = self._call("hold", args)
        expires = None if timeout is None else self.clock.now + timedelta(seconds=timeout)
        assert (amount, expires) == (result.amount, result.expires_at)
        self.balance[user] -= amount
        self.applied[user] += 1
        self.hold_state[key] = ModelHold(user, payee, amount, expires)
        self.recorded[key] = ("hold", args, "applied")
        return key  # a key to replay, and a hold to capture or void

    def _refusal(self, state: ModelHold, take: Decimal | None) -> type[Exception] | None:
        """The error a capture (``take``) or void (None) of this hold must raise now, if any."""
        if state.status == "expired" or (
            state.status == "active" and state.expired(self.clock.now)
        ):
            return HoldExpired
        if state.status != "active":
            return HoldClosed
        if take is not None and take > state.remaining:
            return HoldExceeded
        return None

    @rule(
        target=closes,
        hold_id=holds,
        portion=st.sampled_from(["all", "half", "exact", "over"]),
        final=st.booleans(),
    )
    def capture(self, hold_id: str, portion: str, final: bool) -> Any:
        state = self.hold_state.get(hold_id)
        if state is None:  # a rejected hold, or another kind of key
            return multiple()
        currency = self.currency[state.user]
        base = state.remaining or state.amount  # a closed hold: any positive amount
        half = (base / 2).quantize(quantum(currency), rounding="ROUND_DOWN")
        take = {
            "all": None, "half": half or base, "exact": base, "over": base + 1,
        }[portion]  # fmt: skip
        key = self._fresh("capture")
        args = {"idempotency_key": key, "hold_id": hold_id, "amount": take, "final": final}
        error = self._refusal(state, state.remaining if take is None else take)
        event(f"capture: {error.__name__ if error else 'applied'}")
        if error is not None:
            with pytest.raises(error):
                self._call("capture", args)
            return multiple()
        taken = state.remaining if take is None else take
        result = self._call("capture", args)
        released = state.remaining - taken if final else Decimal(0)
        state.remaining -= taken + released
        state.captured += taken
        state.released += released
        if state.remaining == 0:
            state.status = "captured"
        assert (taken, released, state.remaining) == (
            result.amount, result.released, result.remaining,
        )  # fmt: skip
        self.balance[state.user] += released
        self.applied[state.user] += 2 if released else 1
        legs = [(state.user, taken, "debit")]
        if state.payee is not None:
            self.balance[state.payee] += taken
            self.applied[state.payee] += 1
            legs.append((state.payee, taken, "credit"))
        self.recorded[key] = ("capture", args, "applied")
        self.movements[key] = ModelMovement("capture", legs, taken)
        return key

    @rule(target=closes, hold_id=holds)
    def void(self, hold_id: str) -> Any:
        state = self.hold_state.get(hold_id)
        if state is None:
            return multiple()
        key = self._fresh("void")
        args = {"idempotency_key": key, "hold_id": hold_id}
        error = self._refusal(state, None)
        event(f"void: {error.__name__ if error else 'applied'}")
        if error is not None:
            with pytest.raises(error):
                self._call("void", args)
            return multiple()
        result = self._call("void", args)
        assert state.remaining == result.released
        self.balance[state.user] += state.remaining
        state.released += state.remaining
        state.remaining = Decimal(0)
        state.status = "voided"
        self.applied[state.user] += 1
        self.recorded[key] = ("void", args, "applied")
        return key

    @rule(key=closes)
    def replay_a_capture_or_void(self, key: str) -> None:
        kind, args, _ = self.recorded[key]
        assert self._call(kind, args).replayed

    @rule(seconds=st.integers(1, 40))
    def advance_the_clock(self, seconds: int) -> None:
        """Time passes: holds past their expiry give their remainder back, with no write."""
        self.clock.now += timedelta(seconds=seconds)
        for state in self.hold_state.values():
            if state.status == "active" and state.expired(self.clock.now):
                self.balance[state.user] += state.remaining
                state.released += state.remaining
                state.remaining = Decimal(0)
                state.status = "expired"

    @rule()
    def expire_holds(self) -> None:
        """The tidy-up writes releases into history and changes no balance."""
        self.direct.expire_holds(list(self.balance))

    # Refunds and postings ---------------------------------------------------------------

    @rule(
        target=postings,
        payer=users,
        payees=st.lists(st.tuples(users, amounts), min_size=1, max_size=3),
        round_trip=st.none() | amounts,
    )
    def post(
        self, payer: str, payees: list[tuple[str, Decimal]], round_trip: Decimal | None
    ) -> Any:
        """The payer pays every payee in one posting (with ``round_trip`` a leg pair on the
        payer that merges away)."""
        key = self._fresh("post")
        total = sum((amount for _, amount in payees), Decimal(0))
        legs = [Leg(payer, total, "debit")] + [Leg(u, a, "credit") for u, a in payees]
        if round_trip is not None:
            legs += [Leg(payer, round_trip, "credit"), Leg(payer, round_trip, "debit")]
        args = {"idempotency_key": key, "legs": legs}
        net: dict[str, Decimal] = {}
        for leg in legs:
            signed = Decimal(str(leg.amount))
            net[leg.user_id] = net.get(leg.user_id, Decimal(0)) + (
                signed if leg.type.value == "credit" else -signed
            )
        held = self.currency[payer]
        fits = all(
            Decimal(str(leg.amount)) == Decimal(str(leg.amount)).quantize(quantum(held))
            for leg in legs
        )
        if len(net) < 2 or not fits:
            with pytest.raises(ValidationError):
                self._call("post", args)
            return multiple()
        if any(self.currency[user] != held for user in net):
            with pytest.raises(CurrencyMismatch):
                self._call("post", args)
            return multiple()
        short = [u for u, n in net.items() if n < 0 and self.balance[u] + self.limit[u] < -n]
        event(f"post: {'refused' if short else 'applied'}")
        if short:
            with pytest.raises(InsufficientFunds) as caught:
                self._call("post", args)
            assert short[0] == caught.value.user_id
            self.recorded[key] = ("post", args, "rejected")
            return key
        result = self._call("post", args)
        moved = sum((n for n in net.values() if n > 0), Decimal(0))  # legs merged per account
        assert (moved, held) == (result.amount, result.currency)
        for user, amount in net.items():
            self.balance[user] += amount
            self.applied[user] += 1
        self.recorded[key] = ("post", args, "applied")
        merged = [(u, abs(n), "credit" if n >= 0 else "debit") for u, n in net.items()]
        self.movements[key] = ModelMovement("posting", merged, moved)
        return key

    @rule(
        target=refunds,
        original=st.one_of(keys, closes, postings),
        portion=st.sampled_from(["all", "half", "over"]),
    )
    def refund(self, original: str, portion: str) -> Any:
        """A refund of any key: refused unless applied and refundable; never past the original."""
        key = self._fresh("refund")
        state = self.movements.get(original)
        if state is None:  # refused, a hold or a void
            with pytest.raises(NotRefundable):
                self._call("refund", {"idempotency_key": key, "of": original})
            return multiple()
        currency = self.currency[state.legs[0][0]]
        left = state.total - state.refunded
        half = (left / 2).quantize(quantum(currency), rounding="ROUND_DOWN")
        asked = {"all": None, "half": half or left or state.total, "over": left + 1}[portion]
        args = {"idempotency_key": key, "of": original, "amount": asked}
        take = left if asked is None else asked
        error: type[Exception] | None = None
        if state.kind == "posting" and asked is not None and asked != state.total:
            error = ValidationError
        elif take > left or take <= 0:
            error = RefundExceeded
        event(f"refund of a {state.kind}: {error.__name__ if error else 'checked'}")
        if error is not None:
            with pytest.raises(error):
                self._call("refund", args)
            return multiple()
        back = [
            (user, amount if state.kind == "posting" else take, kind)
            for user, amount, kind in state.legs
        ]
        short = [
            u for u, a, kind in back if kind == "credit" and self.balance[u] + self.limit[u] < a
        ]
        if short:
            with pytest.raises(InsufficientFunds) as caught:
                self._call("refund", args)
            assert short[0] == caught.value.user_id
            self.recorded[key] = ("refund", args, "rejected")
            return key
        result = self._call("refund", args)
        assert (take, state.kind) == (result.amount, result.kind)
        for user, amount, kind in back:
            self.balance[user] += -amount if kind == "credit" else amount
            self.applied[user] += 1
        state.refunded += take
        self.recorded[key] = ("refund", args, "applied")
        return key

    @rule(key=st.one_of(postings, refunds))
    def replay_a_posting_or_refund(self, key: str) -> None:
        self.replay(key)

    @rule(key=refunds)
    def refund_a_refund(self, key: str) -> None:
        with pytest.raises(NotRefundable):
            self._call("refund", {"idempotency_key": self._fresh("refund"), "of": key})

    # Invariants -------------------------------------------------------------------------

    @invariant()
    def balances_match_the_model_and_never_go_below_minus_their_limit(self) -> None:
        read = {u: self.direct.get_user_balance(u) for u in self.balance}
        actual = {u: balance.amount for u, balance in read.items()}
        assert self.balance == actual
        assert {u: self.limit[u] for u in self.balance} == {
            u: balance.credit_limit for u, balance in read.items()
        }
        # Below minus the limit only when the limit was lowered below the debt, and only
        # until the account is back within it (no debit can take it there again).
        for user_id, amount in actual.items():
            if amount >= -self.limit[user_id]:
                self.lowered.discard(user_id)
        assert {u for u in actual if actual[u] < -self.limit[u]} <= self.lowered
        held: dict[str, Decimal] = {u: Decimal(0) for u in self.balance}
        for state in self.hold_state.values():
            if state.status == "active":
                held[state.user] += state.remaining
        assert held == {u: balance.held for u, balance in read.items()}

    @invariant()
    def refunds_never_exceed_their_originals(self) -> None:
        """What the model applied of each original's refunds is at most the original."""
        assert all(m.refunded <= m.total for m in self.movements.values())

    @invariant()
    def each_hold_adds_up_and_nothing_moves_after_expiry_or_close(self) -> None:
        """captured + released + remaining = amount, as the model says, for every hold."""
        for hold_id, state in self.hold_state.items():
            hold = self.direct.get_hold(hold_id)
            assert hold.captured + hold.released + hold.remaining == hold.amount
            assert (state.status, state.captured, state.released, state.remaining) == (
                hold.status, hold.captured, hold.released, hold.remaining,
            )  # fmt: skip

    @invariant()
    def history_lists_each_applied_entry_once_and_reconciles(self) -> None:
        if not self.balance:
            return
        for user_id in self.balance:
            items = self.direct.history(user_id, limit=1000).items
            assert self.applied[user_id] == len([i for i in items if i.kind != "expiry"])
            assert len(items) == len({(i.idempotency_key, i.kind) for i in items})
        assert self.direct.reconcile(list(self.balance)).ok


def _run_machine(
    endpoint: str, ledger: Ledger, faults: dict[str, float] | None, examples: int, steps: int
) -> None:
    machine = type(
        "Machine",
        (LedgerMachine,),
        {"endpoint": endpoint, "prefix": ledger.settings.table_prefix, "fault_rates": faults},
    )
    machine.TestCase.settings = settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        database=None,
    )
    machine.TestCase().runTest()


class TestStateMachine:
    def test_random_sequences_match_the_model(
        self, dynamodb_endpoint: str, fresh_ledger: Ledger
    ) -> None:
        """Creates, credits, debits, transfers, holds, captures, voids, expiry, postings,
        refunds, replays, key reuse and restarts: the model agrees."""
        _run_machine(dynamodb_endpoint, fresh_ledger, None, examples=12, steps=20)

    def test_random_sequences_match_the_model_under_injected_faults(
        self, dynamodb_endpoint: str, fresh_ledger: Ledger
    ) -> None:
        """The same, through the proxy injecting conflicts, throttles, 500s and lost replies."""
        _run_machine(
            dynamodb_endpoint, fresh_ledger, FAULTS_IN_STATE_MACHINE, examples=12, steps=20
        )

    @pytest.mark.soak
    def test_soak_random_sequences_under_injected_faults(
        self, dynamodb_endpoint: str, fresh_ledger: Ledger
    ) -> None:
        """Many more, longer sequences through the faulty proxy."""
        _run_machine(
            dynamodb_endpoint, fresh_ledger, FAULTS_IN_STATE_MACHINE, examples=200, steps=50
        )


class TestLoad:
    @pytest.mark.parametrize(
        "faults", [None, guarantees.DEFAULT_FAULT_RATES], ids=["clean", "faults"]
    )
    def test_sixteen_threads_on_hot_accounts_keep_every_invariant(
        self, fresh_ledger: Ledger, faults: dict[str, float] | None
    ) -> None:
        """16 threads mix credits, debits, transfers, holds, captures, voids, a moving clock,
        replays and key reuse on 4 accounts."""
        report = guarantees.run_load(fresh_ledger, threads=16, operations=12, seed=7,
                                     fault_rates=faults)  # fmt: skip
        assert {} == dict(report.violations)
        assert 16 * 12 == report.operations
        if faults:
            assert report.ambiguous > 0
            assert report.faults[faultproxy.CONFLICT] > 0

    @pytest.mark.soak
    def test_soak_a_hundred_thousand_operations_on_one_growing_table_set(
        self, fresh_ledger: Ledger
    ) -> None:
        """The long run: 16 threads x 6,250 operations with every fault kind injected,
        all on one table set that grows past 100,000 records."""
        report = guarantees.run_load(
            fresh_ledger,
            threads=16,
            operations=6_250,
            seed=11,
            fault_rates=guarantees.DEFAULT_FAULT_RATES,
        )
        assert (100_000, {}) == (report.operations, dict(report.violations))


@pytest.fixture(scope="module")
def bad_input_ledger(dynamodb_endpoint: str) -> tuple[Ledger, dict[str, str]]:
    ledger = Ledger(dynamodb_endpoint, table_prefix=f"bad{uuid.uuid4().hex[:6]}_",
                    retry=RetryPolicy(max_attempts=2, base_delay=0, max_delay=0))  # fmt: skip
    ledger.migrate()
    return ledger, guarantees.bad_input_ids(ledger)


class TestBadInput:
    def test_the_matrix_has_at_least_forty_cases(self) -> None:
        """The matrix covers the API and the CLI with 40 or more malformed calls."""
        assert len(guarantees.BAD_INPUTS) >= 40
        assert any(c.description.startswith("cli:") for c in guarantees.BAD_INPUTS)

    @pytest.mark.parametrize(
        "case", guarantees.BAD_INPUTS, ids=[c.description for c in guarantees.BAD_INPUTS]
    )
    def test_raises_its_documented_error_and_writes_nothing(
        self, bad_input_ledger: tuple[Ledger, dict[str, str]], case: guarantees.BadInput
    ) -> None:
        """Each bad call raises its error (the CLI: one line, exit 1); the scans are equal."""
        ledger, ids = bad_input_ledger
        assert guarantees.try_bad_input(ledger, ids, case) is None
