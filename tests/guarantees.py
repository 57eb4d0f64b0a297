"""Measure the ledger's guarantees under load and injected faults; print the README's table.

Run ``python -m tests.guarantees`` (or ``make guarantees``). The same
functions back the tests in ``test_guarantees.py``: the tests assert zero
violations, this command prints the figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import attrs

from dynaledger import Ledger, Leg, RetryPolicy
from dynaledger.errors import (
    ConcurrencyError,
    CurrencyMismatch,
    HoldClosed,
    HoldExceeded,
    HoldExpired,
    HoldNotFound,
    IdempotencyConflict,
    InsufficientFunds,
    LedgerError,
    MovementNotFound,
    RefundExceeded,
    ServiceUnavailable,
    UserNotFound,
    ValidationError,
)
from tests import faultproxy

#: The fault mix of a faulty run: rates per TransactWriteItems request.
DEFAULT_FAULT_RATES = {
    faultproxy.CONFLICT: 0.10,
    faultproxy.THROTTLE: 0.03,
    faultproxy.THROUGHPUT: 0.02,
    faultproxy.SERVER_ERROR: 0.03,
    faultproxy.DROP_AFTER_COMMIT: 0.03,
    faultproxy.STALL_AFTER_COMMIT: 0.005,
}
LOAD_RETRY = RetryPolicy(max_attempts=8, base_delay=0.001, max_delay=0.02)
#: Refusals of a capture or void that depend on when it arrives: final for that call only.
HOLD_REFUSALS = (HoldExpired, HoldClosed, HoldExceeded, RefundExceeded)
HOLD_KINDS = frozenset({"hold", "capture", "void"})
#: The credit limits of a load run's hot accounts, in turn: half may go below zero.
LOAD_LIMITS = ("0", "60")


class LoadClock:
    """The clock every ledger of a load run reads; workers move it forward."""

    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: int) -> None:
        with self._lock:
            self.now += timedelta(seconds=seconds)


UNAVAILABLE = (ConcurrencyError, ServiceUnavailable)
READ_TIMEOUT = 5.0


# Load ---------------------------------------------------------------------------------


@attrs.define
class KeyState:
    """What the client asked under one key and every outcome it saw."""

    kind: str
    args: dict[str, Any]
    outcomes: list[str] = attrs.Factory(list)
    result: Any = None  # what an applied call returned (holds, captures, voids are read back)

    @property
    def definite(self) -> str | None:
        """``applied``, ``rejected`` or ``refused`` (a capture or void of a hold past its expiry
        or closed) once any call told; None while only failures were seen."""
        if {"applied", "replayed"} & set(self.outcomes):
            return "applied"
        if "rejected" in self.outcomes:
            return "rejected"
        if "refused" in self.outcomes:
            return "refused"
        return None


@attrs.define
class LoadReport:
    """What a load run did and which invariants broke (all counts)."""

    operations: int = 0
    outcomes: Counter[str] = attrs.Factory(Counter)
    faults: Counter[str] = attrs.Factory(Counter)
    retries: dict[str, int] = attrs.Factory(dict)
    violations: Counter[str] = attrs.Factory(Counter)
    seconds: float = 0.0

    @property
    def ambiguous(self) -> int:
        """Requests the server committed whose reply the client never got."""
        return sum(self.faults[f] for f in faultproxy.AMBIGUOUS)

    def add(self, other: LoadReport) -> None:
        self.operations += other.operations
        self.outcomes.update(other.outcomes)
        self.faults.update(other.faults)
        for kind, count in other.retries.items():
            self.retries[kind] = self.retries.get(kind, 0) + count
        self.violations.update(other.violations)
        self.seconds += other.seconds


class _Client:
    """One worker's view: the keys it used and what it saw."""

    def __init__(  # noqa: PLR0917 - one worker's whole context
        self, ledger: Ledger, direct: Ledger, accounts: list[str], rng: random.Random, run: str,
        clock: LoadClock,
    ) -> None:  # fmt: skip
        self.ledger, self.direct, self.accounts, self.rng, self.run = (
            ledger, direct, accounts, rng, run,
        )  # fmt: skip
        self.clock = clock
        # The lowest balance + credit limit any step left: below zero is an overdraft.
        self.lowest = Decimal("Infinity")
        self.keys: dict[str, KeyState] = {}
        self.settled: list[str] = []  # keys whose outcome the client knows, in that order
        self.outcomes: Counter[str] = Counter()
        self.unexpected: Counter[str] = Counter()

    def call(self, kind: str, args: dict[str, Any], state: KeyState | None = None) -> str:
        result: Any = None
        try:
            result = getattr(self.ledger, kind)(**args)
        except InsufficientFunds:
            outcome = "rejected"
        except HOLD_REFUSALS:
            outcome = "refused"
        except IdempotencyConflict:
            outcome = "conflict"
        except UNAVAILABLE:
            outcome = "unavailable"
        except LedgerError as error:
            outcome = f"error:{type(error).__name__}"
            self.unexpected[outcome] += 1
        except Exception as error:  # noqa: BLE001 - a leak is what this counts
            outcome = f"leaked:{type(error).__name__}"
            self.unexpected[outcome] += 1
        else:
            outcome = "replayed" if result.replayed else "applied"
            if state is not None and state.result is None:
                state.result = result
        self.outcomes[outcome] += 1
        # No overdraft, checked after every step: read what this step touched.
        for user_id in self._touched(kind, args):
            read = self.direct.get_user_balance(user_id)
            self.lowest = min(self.lowest, read.amount + read.credit_limit)
        return outcome

    def _touched(self, kind: str, args: dict[str, Any]) -> list[str]:
        if kind in ("capture", "void"):
            made = self.keys[args["hold_id"]].args
            return [u for u in (made["user_id"], made.get("to_user_id")) if u]
        if kind == "hold":
            return [args["user_id"]]
        if kind == "refund":
            return list(_effects(self.keys[args["of"]].kind, self.keys[args["of"]].args))
        return list(_effects(kind, args))

    def _record(self, key: str, outcome: str) -> None:
        state = self.keys[key]
        known = state.definite
        state.outcomes.append(outcome)
        if known is None and state.definite is not None:
            self.settled.append(key)

    def step(self, n: int) -> None:
        rng, used = self.rng, self.settled
        roll = rng.random()
        if used and roll < 0.10:  # a client retry of an earlier request
            key = rng.choice(used)
            state = self.keys[key]
            self._record(key, self.call(state.kind, state.args, state))
            return
        priced = [
            k for k in used if "amount" in self.keys[k].args and self.keys[k].kind != "refund"
        ]
        if priced and roll < 0.15:  # the same key for something else: must be refused
            key = rng.choice(priced)
            state = self.keys[key]
            changed = {**state.args, "amount": str(Decimal(state.args["amount"]) + 1)}
            if self.call(state.kind, changed) in {"applied", "replayed", "rejected"}:
                self.unexpected["reused key not refused"] += 1
            return
        key = f"{self.run}-{threading.get_ident()}-{n}"
        held = [k for k in used if self.keys[k].kind == "hold" and self.keys[k].definite
                == "applied"]  # fmt: skip
        refundable = [k for k in used if self.keys[k].kind in ("transact", "transfer", "post")
                      and self.keys[k].definite == "applied"]  # fmt: skip
        if roll < 0.34:
            kind, args = "transact", {"user_id": rng.choice(self.accounts), "type": "credit",
                                      "amount": str(rng.randint(1, 20))}  # fmt: skip
        elif roll < 0.50:
            kind, args = "transact", {"user_id": rng.choice(self.accounts), "type": "debit",
                                      "amount": str(rng.randint(1, 40))}  # fmt: skip
        elif roll < 0.60:
            payer, payee = rng.sample(self.accounts, 2)
            kind, args = "transfer", {"from_user_id": payer, "to_user_id": payee,
                                      "amount": str(rng.randint(1, 30))}  # fmt: skip
        elif roll < 0.67:  # a round settled across three accounts
            payer, first, second = rng.sample(self.accounts, 3)
            x, y = rng.randint(1, 15), rng.randint(1, 3)
            kind, args = "post", {"legs": [Leg(payer, str(x + y), "debit"),
                                           Leg(first, str(x), "credit"),
                                           Leg(second, str(y), "credit")]}  # fmt: skip
        elif roll < 0.74 and refundable:  # all or part of an applied movement given back
            of = rng.choice(refundable)
            part = None if self.keys[of].kind == "post" else str(rng.randint(1, 10))
            kind, args = "refund", {"of": of, "amount": rng.choice([None, part])}
        elif roll < 0.80 or (roll < 0.96 and not held):
            holder, payee = rng.sample(self.accounts, 2)
            kind, args = "hold", {"user_id": holder, "amount": str(rng.randint(1, 30)),
                                  "to_user_id": rng.choice([payee, None]),
                                  "timeout": rng.choice([None, 2, 4])}  # fmt: skip
        elif roll < 0.90:
            hold_id = rng.choice(held)
            top = int(Decimal(self.keys[hold_id].args["amount"]))
            kind, args = "capture", {"hold_id": hold_id, "amount": str(rng.randint(1, top)),
                                     "final": rng.random() < 0.5}  # fmt: skip
        elif roll < 0.96:
            kind, args = "void", {"hold_id": rng.choice(held)}
        else:  # time passes for everyone: holds reach their expiry
            self.clock.advance(rng.randint(1, 3))
            self.outcomes["clock moved"] += 1
            return
        state = KeyState(kind, {"idempotency_key": key, **args})
        self.keys[key] = state
        self._record(key, self.call(kind, state.args, state))


def run_load(
    direct: Ledger,
    *,
    threads: int,
    operations: int,
    seed: int,
    fault_rates: dict[str, float] | None = None,
    accounts: int = 4,
) -> LoadReport:
    """Hammer a few hot accounts from ``threads`` workers through the fault proxy; verify.

    ``direct`` is a ledger on the same tables that bypasses the proxy: it sets
    up, watches balances during the run, settles unknown outcomes and checks
    the invariants afterwards.
    """
    run = f"load-{uuid.uuid4().hex[:8]}"
    clock = LoadClock()
    # Every ledger of the run reads the one clock the workers move.
    direct = Ledger(_upstream(direct), table_prefix=direct.settings.table_prefix,
                    retry=LOAD_RETRY, clock=clock)  # fmt: skip
    hot = [f"{run}-acct{i}" for i in range(accounts)]
    for i, user_id in enumerate(hot):
        # Every other account may go below zero: down to minus its credit limit.
        direct.create_user(user_id, balance=None if i == 0 else "100",
                           credit_limit=LOAD_LIMITS[i % len(LOAD_LIMITS)])  # fmt: skip
    initial = {u: direct.get_user_balance(u).amount for u in hot}
    schedule = faultproxy.seeded(seed, fault_rates) if fault_rates else faultproxy.no_faults
    report = LoadReport()
    started = time.monotonic()
    with faultproxy.fault_proxy(_upstream(direct), schedule) as proxy:
        # The embedded endpoint serves one request at a time: with 16 threads a
        # reply can wait seconds in its queue, so only a stall should time out.
        # Two ledgers, as two processes would be: each knows only the holds and
        # movements it wrote or read, so a capture, void or refund often finds the
        # state it knows moved on by the other (and reads it again).
        throughs = [
            Ledger(proxy.url, table_prefix=direct.settings.table_prefix, retry=LOAD_RETRY,
                   read_timeout=READ_TIMEOUT, clock=clock)
            for _ in range(2)
        ]  # fmt: skip
        clients = [
            _Client(throughs[t % 2], direct, hot, random.Random(seed * 1000 + t), run, clock)
            for t in range(threads)
        ]

        def work(client: _Client) -> None:
            for n in range(operations):
                client.step(n)

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(work, clients))
        report.faults.update(proxy.injected)
        report.retries = dict(sum((Counter(t.stats.retries) for t in throughs), Counter()))
    report.seconds = time.monotonic() - started
    for client in clients:
        report.operations += sum(client.outcomes.values())
        report.outcomes.update(client.outcomes)
        report.violations.update(client.unexpected)
    keys = {k: s for client in clients for k, s in client.keys.items()}
    _settle(direct, keys)
    direct.expire_holds(hot)  # every expired hold's release into history, for the count below
    report.violations.update(_verify(direct, hot, initial, keys))
    report.violations.update(_verify_holds(direct, keys, clock.now))
    if min(client.lowest for client in clients) < 0:
        report.violations["balance below minus its limit after a step"] += 1
    return report


def _upstream(ledger: Ledger) -> str:
    assert ledger.settings.endpoint_url is not None
    return ledger.settings.endpoint_url


def _settle(ledger: Ledger, keys: dict[str, KeyState]) -> None:
    """Send once more, with no faults, every request whose outcome the client never learnt."""
    for key in sorted(keys, key=lambda k: keys[k].kind in ("capture", "void")):  # holds first
        state = keys[key]
        if state.definite is None:
            try:
                result: Any = getattr(ledger, state.kind)(**state.args)
                state.outcomes.append("replayed" if result.replayed else "applied")
                state.result = state.result or result
            except InsufficientFunds:
                state.outcomes.append("rejected")
            except HOLD_REFUSALS:
                state.outcomes.append("refused")


def _effects(kind: str, args: dict[str, Any]) -> dict[str, Decimal]:
    """What a request does to each account's balance when applied."""
    if kind == "post":
        net: dict[str, Decimal] = defaultdict(Decimal)
        for leg in args["legs"]:
            amount = Decimal(leg.amount)
            net[leg.user_id] += amount if leg.type.value == "credit" else -amount
        return dict(net)
    amount = Decimal(args["amount"])
    if kind == "transfer":
        return {args["from_user_id"]: -amount, args["to_user_id"]: amount}
    return {args["user_id"]: amount if args["type"] == "credit" else -amount}


def _verify(
    ledger: Ledger, accounts: list[str], initial: dict[str, Decimal], keys: dict[str, KeyState]
) -> Counter[str]:
    """Check invariants 1 to 4 from the client's view against what the server holds."""
    violations: Counter[str] = Counter()
    expected = dict(initial)
    credits_minus_debits = Decimal(0)
    applied_per_account: dict[str, Counter[str]] = defaultdict(Counter)
    for key, state in keys.items():
        violations.update(_key_violations(state))
        if state.definite != "applied" or state.kind in HOLD_KINDS:
            continue
        kind, effects = (
            state.kind,
            _effects(state.kind, state.args) if state.kind != "refund" else {},
        )
        if kind == "refund":  # the original's effects reversed, for the amount given back
            original = keys[state.args["of"]]
            kind, given = original.kind, state.result.amount
            effects = {
                user: -delta if kind == "post" else (given if delta < 0 else -given)
                for user, delta in _effects(original.kind, original.args).items()
            }
        for user_id, delta in effects.items():
            expected[user_id] += delta
            applied_per_account[user_id][key] += 1
            if kind == "transact":
                credits_minus_debits += delta
    held = _hold_effects(ledger, keys, expected, applied_per_account)
    credits_minus_debits -= held.pop("", Decimal(0))  # captures without a payee leave
    read = {u: ledger.get_user_balance(u) for u in accounts}
    actual = {u: read[u].amount for u in accounts}
    if {u: read[u].held for u in accounts} != {u: held.get(u, Decimal(0)) for u in accounts}:
        violations["held differs from the holds still open (holds)"] += 1
    for user_id in accounts:
        if actual[user_id] != expected[user_id]:
            violations["balance differs from acknowledged effects (exactly once)"] += 1
        if actual[user_id] + read[user_id].credit_limit < 0:
            violations["balance below minus its limit"] += 1
        if _history_keys(ledger, user_id) != applied_per_account[user_id]:
            violations["history differs from applied entries"] += 1
    total = sum(actual.values()) + sum(read[u].held for u in accounts)
    if total != sum(initial.values()) + credits_minus_debits:
        violations["money created or lost (conservation)"] += 1
    if not ledger.reconcile(accounts).ok:
        violations["reconcile found a mismatch"] += 1
    return violations


def _hold_effects(
    ledger: Ledger,
    keys: dict[str, KeyState],
    expected: dict[str, Decimal],
    applied_per_account: dict[str, Counter[str]],
) -> dict[str, Decimal]:
    """Add what holds, captures and voids did to ``expected`` spendable balances and the
    history each account should show; return what each account still holds (under ``""``,
    what captures without a payee took out of the ledger)."""
    held: dict[str, Decimal] = defaultdict(Decimal)
    closes_of = _applied_closes(keys)
    for key, state in keys.items():
        if state.definite != "applied" or state.kind != "hold":
            continue
        holder, payee = state.args["user_id"], state.args.get("to_user_id")
        remaining = Decimal(state.args["amount"])
        expected[holder] -= remaining
        applied_per_account[holder][key] += 1
        for close_key, close in closes_of[key]:
            taken = close.result.amount if close.kind == "capture" else Decimal(0)
            released = close.result.released
            remaining -= taken + released
            expected[holder] += released
            applied_per_account[holder][close_key] += 2 if taken and released else 1
            if taken and payee:
                expected[payee] += taken
                applied_per_account[payee][close_key] += 1
            elif taken:
                held[""] += taken
        hold = ledger.get_hold(key)
        if hold.status == "expired" and remaining:
            expected[holder] += remaining  # back to the holder at its expiry instant
            applied_per_account[holder][key] += 1  # the expiry entry, under the hold's key
        elif hold.status == "active":
            held[holder] += remaining
    return held


def _applied_closes(keys: dict[str, KeyState]) -> dict[str, list[tuple[str, KeyState]]]:
    """The applied captures and voids of each hold, by hold id (one pass over the keys)."""
    closes: dict[str, list[tuple[str, KeyState]]] = defaultdict(list)
    for key, state in keys.items():
        if state.kind in ("capture", "void") and state.definite == "applied":
            closes[state.args["hold_id"]].append((key, state))
    return closes


def _verify_holds(ledger: Ledger, keys: dict[str, KeyState], now: Any) -> Counter[str]:
    """Each hold adds up, was captured exactly as acknowledged, and nothing moved after its
    expiry or close."""
    violations: Counter[str] = Counter()
    closes_of = _applied_closes(keys)
    for key, state in keys.items():
        if state.kind != "hold" or state.definite != "applied":
            continue
        hold = ledger.get_hold(key)
        if hold.captured + hold.released + hold.remaining != hold.amount:
            violations["a hold's captured + released + remaining is not its amount"] += 1
        closes = [close for _, close in closes_of[key]]
        captured = sum((c.result.amount for c in closes if c.kind == "capture"), Decimal(0))
        if captured != hold.captured:
            violations["captured differs from acknowledged captures"] += 1
        if hold.expires_at is not None and any(
            c.result.timestamp >= hold.expires_at for c in closes
        ):
            violations["a capture or void at or after expiry"] += 1
        finals = [c for c in closes if c.kind == "void" or c.result.remaining == 0]
        if len(finals) > 1 or (finals and hold.status not in ("captured", "voided")):
            violations["a hold closed twice, or moved after close"] += 1
        if hold.status == "active" and hold.expires_at is not None and hold.expires_at <= now:
            violations["an expired hold shown active"] += 1
    return violations


def _key_violations(state: KeyState) -> list[str]:
    if state.definite is None:
        return ["outcome never learnt"]
    found = []
    if {"applied", "replayed"} & set(state.outcomes) and {"rejected", "refused"} & set(
        state.outcomes
    ):
        found.append("key both applied and rejected")
    if state.outcomes.count("applied") > 1:
        found.append("applied twice (exactly once)")
    return found


def _history_keys(ledger: Ledger, user_id: str) -> Counter[str]:
    """How often each key appears in an account's whole history."""
    keys: Counter[str] = Counter()
    cursor = None
    while True:
        page = ledger.history(user_id, limit=1000, cursor=cursor)
        keys.update(entry.idempotency_key for entry in page.items)
        cursor = page.next_cursor
        if cursor is None:
            return keys


# Bad input ----------------------------------------------------------------------------


@attrs.frozen
class BadInput:
    """One malformed call and the error it must raise."""

    description: str
    call: Callable[[Ledger, dict[str, str]], object]
    error: type[LedgerError]


def _transact(**overrides: Any) -> Callable[[Ledger, dict[str, str]], object]:
    def call(ledger: Ledger, ids: dict[str, str]) -> object:
        args = {"idempotency_key": ids["fresh_key"], "user_id": ids["user"], "amount": "1",
                "type": "debit"}  # fmt: skip
        return ledger.transact(**{**args, **{k: ids.get(v, v) if isinstance(v, str) else v
                                             for k, v in overrides.items()}})  # fmt: skip

    return call


def _transfer(**overrides: Any) -> Callable[[Ledger, dict[str, str]], object]:
    def call(ledger: Ledger, ids: dict[str, str]) -> object:
        args = {"idempotency_key": ids["fresh_key"], "from_user_id": ids["user"],
                "to_user_id": ids["other"], "amount": "1"}  # fmt: skip
        return ledger.transfer(**{**args, **{k: ids.get(v, v) if isinstance(v, str) else v
                                             for k, v in overrides.items()}})  # fmt: skip

    return call


def _hold(**overrides: Any) -> Callable[[Ledger, dict[str, str]], object]:
    def call(ledger: Ledger, ids: dict[str, str]) -> object:
        args = {"idempotency_key": ids["fresh_key"], "user_id": ids["user"], "amount": "1"}
        return ledger.hold(**{**args, **{k: ids.get(v, v) if isinstance(v, str) else v
                                         for k, v in overrides.items()}})  # fmt: skip

    return call


def _limit(**overrides: Any) -> Callable[[Ledger, dict[str, str]], object]:
    def call(ledger: Ledger, ids: dict[str, str]) -> object:
        args = {"idempotency_key": ids["fresh_key"], "user_id": ids["user"], "limit": "10"}
        given = {k: ids.get(v, v) if isinstance(v, str) else v for k, v in overrides.items()}
        return ledger.set_credit_limit(**{**args, **given})

    return call


def _post(*legs: tuple[str, str, str]) -> Callable[[Ledger, dict[str, str]], object]:
    def call(ledger: Ledger, ids: dict[str, str]) -> object:
        given = [Leg(ids.get(user, user), amount, kind) for user, amount, kind in legs]
        return ledger.post(idempotency_key=ids["fresh_key"], legs=given)

    return call


def _cli(*args: str) -> Callable[[Ledger, dict[str, str]], object]:
    def call(ledger: Ledger, ids: dict[str, str]) -> object:
        argv = [ids.get(a, a) for a in args]
        assert ledger.settings.endpoint_url is not None
        done = subprocess.run(
            [sys.executable, "-m", "dynaledger", "--endpoint", ledger.settings.endpoint_url,
             "--table-prefix", ledger.settings.table_prefix, *argv],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        lines = done.stderr.splitlines()
        if done.returncode != 1 or len(lines) != 1 or not lines[0].startswith("error: "):
            raise AssertionError(f"CLI {argv}: exit {done.returncode}, stderr {done.stderr!r}")
        raise _CLIRefused(lines[0])

    return call


class _CLIRefused(LedgerError):
    """The CLI printed one error line and exited 1."""


V = ValidationError
BAD_INPUTS: list[BadInput] = [
    BadInput("amount: float NaN", _transact(amount=float("nan")), V),
    BadInput("amount: Decimal NaN", _transact(amount=Decimal("NaN")), V),
    BadInput("amount: str NaN", _transact(amount="NaN"), V),
    BadInput("amount: +infinity", _transact(amount=float("inf")), V),
    BadInput("amount: -infinity", _transact(amount=Decimal("-Infinity")), V),
    BadInput("amount: thousands separator", _transact(amount="1,000"), V),
    BadInput("amount: exponent str 1E-3 in USD", _transact(amount="1E-3"), V),
    BadInput("amount: negative zero", _transact(amount=Decimal("-0")), V),
    BadInput("amount: negative", _transact(amount="-5"), V),
    BadInput("amount: zero", _transact(amount=0), V),
    BadInput("amount: 3 decimals in USD", _transact(amount="1.001"), V),
    BadInput("amount: float 0.1 + 0.2", _transact(amount=0.1 + 0.2), V),
    BadInput("amount: 39 digits", _transact(amount="9" * 39), V),
    BadInput("amount: above the maximum", _transact(amount="1000000000000000.01"), V),
    BadInput("amount: bool", _transact(amount=True), V),
    BadInput("amount: None", _transact(amount=None), V),
    BadInput("amount: list", _transact(amount=[1]), V),
    BadInput("amount: empty str", _transact(amount=""), V),
    BadInput("amount: padded str", _transact(amount=" 1"), V),
    BadInput("amount: Arabic-Indic digits", _transact(amount="\u0661"), V),
    BadInput("amount: 0.5 JPY", _transact(user_id="yen", amount="0.5"), V),
    BadInput("type: unknown", _transact(type="refund"), V),
    BadInput("type: upper case", _transact(type="CREDIT"), V),
    BadInput("type: None", _transact(type=None), V),
    BadInput("currency: unknown code", _transact(currency="XYZ"), V),
    BadInput("currency: lower case", _transact(currency="usd"), V),
    BadInput("currency: differs from account", _transact(currency="EUR"), CurrencyMismatch),
    BadInput("key: empty", _transact(idempotency_key=""), V),
    BadInput("key: 256 characters", _transact(idempotency_key="k" * 256), V),
    BadInput("key: NUL character", _transact(idempotency_key="a\x00b"), V),
    BadInput("key: newline", _transact(idempotency_key="a\nb"), V),
    BadInput("key: lone surrogate", _transact(idempotency_key="a\ud800"), V),
    BadInput("key: int", _transact(idempotency_key=42), V),
    BadInput("key: reused with another amount", _transact(idempotency_key="used_key",
                                                          amount="2"), IdempotencyConflict),
    BadInput("user: empty", _transact(user_id=""), V),
    BadInput("user: whitespace only", _transact(user_id="   "), V),
    BadInput("user: 256 characters", _transact(user_id="u" * 256), V),
    BadInput("user: unknown", _transact(user_id="ghost"), UserNotFound),
    BadInput("user: bytes", _transact(user_id=b"user"), V),
    BadInput("transfer: to oneself", _transfer(to_user_id="user"), V),
    BadInput("transfer: unknown payee", _transfer(to_user_id="ghost"), UserNotFound),
    BadInput("transfer: unknown payer", _transfer(from_user_id="ghost"), UserNotFound),
    BadInput("transfer: across currencies", _transfer(to_user_id="euro"), CurrencyMismatch),
    BadInput("transfer: NaN amount", _transfer(amount="NaN"), V),
    BadInput("balance: empty user", lambda ledger, ids: ledger.get_user_balance(""), V),
    BadInput("balance: unknown user", lambda ledger, ids: ledger.get_user_balance("ghost"),
             UserNotFound),
    BadInput("history: limit 0", lambda ledger, ids: ledger.history(ids["user"], limit=0), V),
    BadInput("history: forged cursor", lambda ledger, ids: ledger.history(ids["user"],
                                                                          cursor="e30="), V),
    BadInput("create_user: taken id", lambda ledger, ids: ledger.create_user(ids["user"]),
             LedgerError),
    BadInput("create_user: negative balance",
             lambda ledger, ids: ledger.create_user("new-neg", balance="-1"), V),
    BadInput("cli: amount with a sign", _cli("transact", "--key", "fresh_key", "--user",
                                             "user", "--amount", "+1", "--type", "credit"),
             _CLIRefused),
    BadInput("cli: unknown type", _cli("transact", "--key", "fresh_key", "--user", "user",
                                       "--amount", "1", "--type", "refund"), _CLIRefused),
    BadInput("cli: overdraft of an unknown user", _cli("transact", "--key", "fresh_key",
                                                       "--user", "ghost", "--amount", "1",
                                                       "--type", "debit"), _CLIRefused),
    BadInput("cli: self-transfer", _cli("transfer", "--key", "fresh_key", "--from", "user",
                                        "--to", "user", "--amount", "1"), _CLIRefused),
    BadInput("cli: history limit 5000", _cli("history", "user", "--limit", "5000"), _CLIRefused),
    BadInput("set_credit_limit: negative", _limit(limit="-1"), V),
    BadInput("set_credit_limit: 3 decimals in USD", _limit(limit="1.001"), V),
    BadInput("set_credit_limit: above the largest amount", _limit(limit="1e16"), V),
    BadInput("set_credit_limit: NaN", _limit(limit=Decimal("NaN")), V),
    BadInput("set_credit_limit: unknown user", _limit(user_id="ghost"), UserNotFound),
    BadInput("set_credit_limit: a transact's key", _limit(idempotency_key="used_key"),
             IdempotencyConflict),
    BadInput("create_user: negative credit limit",
             lambda ledger, ids: ledger.create_user("new-lim", credit_limit="-1"), V),
    BadInput("cli: set-credit-limit 0.5 on a JPY account", _cli(
        "set-credit-limit", "--key", "fresh_key", "--user", "yen", "--limit", "0.5"),
        _CLIRefused),
    BadInput("hold: zero timeout", _hold(timeout=0), V),
    BadInput("hold: timeout as str", _hold(timeout="60"), V),
    BadInput("hold: to oneself", _hold(to_user_id="user"), V),
    BadInput("hold: unknown payee", _hold(to_user_id="ghost"), UserNotFound),
    BadInput("hold: payee in another currency", _hold(to_user_id="euro"), CurrencyMismatch),
    BadInput("capture: unknown hold", lambda ledger, ids: ledger.capture(
        idempotency_key=ids["fresh_key"], hold_id=ids["ghost"]), HoldNotFound),
    BadInput("capture: a transact's key as the hold", lambda ledger, ids: ledger.capture(
        idempotency_key=ids["fresh_key"], hold_id=ids["used_key"]), HoldNotFound),
    BadInput("void: unknown hold", lambda ledger, ids: ledger.void(
        idempotency_key=ids["fresh_key"], hold_id=ids["ghost"]), HoldNotFound),
    BadInput("cli: capture of an unknown hold", _cli("capture", "--key", "fresh_key", "--hold",
                                                     "ghost"), _CLIRefused),
    BadInput("post: unbalanced legs", _post(("user", "2", "debit"), ("other", "1", "credit")), V),
    BadInput("post: one account", _post(("user", "1", "debit"), ("user", "1", "credit")), V),
    BadInput("post: a leg's amount NaN", _post(("user", "NaN", "debit"),
                                               ("other", "NaN", "credit")), V),
    BadInput("post: unknown account", _post(("user", "1", "debit"), ("ghost", "1", "credit")),
             UserNotFound),
    BadInput("post: across currencies", _post(("user", "1", "debit"), ("euro", "1", "credit")),
             CurrencyMismatch),
    BadInput("refund: unknown original", lambda ledger, ids: ledger.refund(
        idempotency_key=ids["fresh_key"], of=ids["ghost"]), MovementNotFound),
    BadInput("refund: of its own key", lambda ledger, ids: ledger.refund(
        idempotency_key=ids["used_key"], of=ids["used_key"]), IdempotencyConflict),
    BadInput("refund: more than the original", lambda ledger, ids: ledger.refund(
        idempotency_key=ids["fresh_key"], of=ids["used_key"], amount="2"), RefundExceeded),
    BadInput("cli: post leg without a type", _cli("post", "--key", "fresh_key", "--leg",
                                                  "user:1", "--leg", "other:1"), _CLIRefused),
]  # fmt: skip


def bad_input_ids(ledger: Ledger) -> dict[str, str]:
    """Create the accounts the bad-input matrix refers to; return the names it substitutes."""
    run = uuid.uuid4().hex[:8]
    ids = {
        "user": f"bad-{run}-user",
        "other": f"bad-{run}-other",
        "yen": f"bad-{run}-yen",
        "euro": f"bad-{run}-euro",
        "ghost": f"bad-{run}-ghost",
        "fresh_key": f"bad-{run}-fresh",
        "used_key": f"bad-{run}-used",
    }
    ledger.create_user(ids["user"], balance="10")
    ledger.create_user(ids["other"], balance="10")
    ledger.create_user(ids["yen"], balance="1000", currency="JPY")
    ledger.create_user(ids["euro"], balance="10", currency="EUR")
    ledger.transact(idempotency_key=ids["used_key"], user_id=ids["user"], amount="1",
                    type="credit")  # fmt: skip
    return ids


def scan_all(ledger: Ledger) -> dict[str, list[dict[str, Any]]]:
    """Every item of every ledger table, raw and sorted: equal scans mean nothing was written."""
    client = ledger.botocore_client
    snapshot = {}
    for table in ledger.table_names:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
        while True:
            page = client.scan(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        snapshot[table] = sorted(items, key=repr)
    return snapshot


def try_bad_input(ledger: Ledger, ids: dict[str, str], case: BadInput) -> str | None:
    """Run one bad call; return None if it raised its error and wrote nothing, else what broke."""
    before = scan_all(ledger)
    try:
        case.call(ledger, ids)
    except case.error:
        pass
    except Exception as error:  # noqa: BLE001 - the wrong error is the finding
        return f"{case.description}: raised {type(error).__name__}: {error}"
    else:
        return f"{case.description}: raised nothing"
    if scan_all(ledger) != before:
        return f"{case.description}: wrote to a table"
    return None


# The command -------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Measure and print the "Guarantees, measured" table."""
    parser = argparse.ArgumentParser(prog="python -m tests.guarantees", description=__doc__)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--operations", type=int, default=640, help="per thread and run")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    from dynaledger.local import embedded_dynamodb

    with embedded_dynamodb() as url:

        def fresh() -> Ledger:
            ledger = Ledger(url, table_prefix=f"g{uuid.uuid4().hex[:6]}_", retry=LOAD_RETRY)
            ledger.migrate()
            return ledger

        # Both load runs on one table set, which grows through them: the faulty run
        # starts with every record of the clean run already in Transactions.
        tables = fresh()
        clean = run_load(tables, threads=args.threads, operations=args.operations,
                         seed=args.seed)  # fmt: skip
        faulty = run_load(tables, threads=args.threads, operations=args.operations,
                          seed=args.seed + 1, fault_rates=DEFAULT_FAULT_RATES)  # fmt: skip
        records = sum(len(items) for items in scan_all(tables).values())
        # The matrix compares full scans before and after each case: small tables of its own.
        matrix = fresh()
        ids = bad_input_ids(matrix)
        failures = [f for f in (try_bad_input(matrix, ids, c) for c in BAD_INPUTS) if f]
    print(f"Items in the load's tables at the end: {records}.")
    print(_table(args, clean, faulty, len(BAD_INPUTS), failures))
    return 0 if not (clean.violations or faulty.violations or failures) else 1


def _table(
    args: argparse.Namespace,
    clean: LoadReport,
    faulty: LoadReport,
    tried: int,
    failures: list[str],
) -> str:
    def faults(report: LoadReport) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(report.faults.items())) or "none"

    def outcomes(report: LoadReport) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(report.outcomes.items()))

    def retries(report: LoadReport) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(report.retries.items())) or "0"

    rows = [
        ("operations attempted", clean.operations, faulty.operations),
        ("outcomes seen by clients", outcomes(clean), outcomes(faulty)),
        ("faults injected", faults(clean), faults(faulty)),
        ("ambiguous failures (committed, reply lost)", clean.ambiguous, faulty.ambiguous),
        ("retries by kind", retries(clean), retries(faulty)),
        (
            "invariant violations",
            sum(clean.violations.values()),
            sum(faulty.violations.values()),
        ),
        ("seconds", f"{clean.seconds:.1f}", f"{faulty.seconds:.1f}"),
    ]
    lines = [
        f"Command: python -m tests.guarantees --threads {args.threads} "
        f"--operations {args.operations} --seed {args.seed}",
        f"Machine: {platform.platform()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        "",
        "| measured | no faults | injected faults |",
        "| --- | --- | --- |",
        *(f"| {name} | {a} | {b} |" for name, a, b in rows),
        "",
        f"Bad inputs tried: {tried}; rejected with their documented error and no write: "
        f"{tried - len(failures)}.",
    ]
    for report in (clean, faulty):
        lines.extend(f"VIOLATION: {k} x{v}" for k, v in report.violations.items())
    lines.extend(f"BAD INPUT NOT HANDLED: {f}" for f in failures)
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
