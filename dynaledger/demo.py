"""``dynaledger demo``: the ledger's guarantees, shown step by step on a live endpoint."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Protocol

from dynaledger import local
from dynaledger.errors import (
    HoldExpired,
    IdempotencyConflict,
    InsufficientFunds,
    LedgerError,
    RefundExceeded,
)
from dynaledger.ledger import Ledger
from dynaledger.values import Leg

Out = Callable[[str], None]
RACERS = 20
RACE_BALANCE = "40.00"
RACE_DEBIT = "5.00"
#: The demo's deployment declares one asset beyond ISO 4217; every Ledger of it says so.
DEMO_ASSETS = {"BTC": 8}


@contextmanager
def _endpoint(endpoint_url: str | None, out: Out) -> Iterator[str]:
    if endpoint_url:
        out(f"Using the DynamoDB endpoint at {endpoint_url}")
        yield endpoint_url
        return
    with local.embedded_dynamodb() as url:
        out(f"Started the embedded DynamoDB endpoint (in memory) at {url}")
        yield url


class MakeLedger(Protocol):
    """Builds each ledger the demo uses, on its endpoint and tables."""

    def __call__(self, url: str, table_prefix: str, **more: Any) -> Ledger: ...


def _plain(url: str, table_prefix: str, **more: Any) -> Ledger:
    return Ledger(url, table_prefix=table_prefix, assets=DEMO_ASSETS, **more)


def run_demo(
    endpoint_url: str | None,
    table_prefix: str | None,
    *,
    out: Out = print,
    make: MakeLedger = _plain,
) -> int:
    """Migrate, seed, and walk through every guarantee; return 0 when all held.

    ``make`` builds each ledger (the command line's has its settings); they
    must declare :data:`DEMO_ASSETS`.
    """
    run = uuid.uuid4().hex[:6]
    prefix = table_prefix if table_prefix is not None else ("" if not endpoint_url else "demo-")
    with _endpoint(endpoint_url, out) as url:
        ledger = make(url, prefix)
        _step(out, "Migrate: create the tables from the models")
        applied = ledger.migrate()
        out(f"  applied revisions: {', '.join(applied) or 'none (already up to date)'}")
        _step(out, "Seed the test users")
        report = ledger.seed()
        out(f"  created {report.created}, skipped {report.skipped} that existed")
        _step(out, "Balances (carol has none stored, so she holds the opening balance)")
        for user in ("alice", "bob", "carol", "dmitri", "emi"):
            _show(ledger, user, out)

        _step(out, "Credit carol 25.50, then debit alice 10")
        credit_key = f"demo-{run}-credit"
        ledger.transact(idempotency_key=credit_key, user_id="carol", amount="25.50", type="credit")
        ledger.transact(idempotency_key=f"demo-{run}-debit", user_id="alice", amount="10",
                        type="debit")  # fmt: skip
        _show(ledger, "carol", out)
        _show(ledger, "alice", out)

        _step(out, "Send the same credit again (a client retry): nothing moves")
        replay = ledger.transact(idempotency_key=credit_key, user_id="carol", amount="25.50",
                                 type="credit")  # fmt: skip
        out(f"  replayed={replay.replayed}, original time {replay.timestamp:%H:%M:%S.%f}")
        _show(ledger, "carol", out)

        _step(out, "Reuse that key for a different amount: refused, nothing written")
        try:
            ledger.transact(idempotency_key=credit_key, user_id="carol", amount="99",
                            type="credit")  # fmt: skip
        except IdempotencyConflict as error:
            out(f"  IdempotencyConflict: {error}")

        _step(out, "Debit bob more than he has: refused and recorded against its key")
        try:
            ledger.transact(idempotency_key=f"demo-{run}-overdraft", user_id="bob",
                            amount="1000", type="debit")  # fmt: skip
        except InsufficientFunds as error:
            out(f"  InsufficientFunds: {error}")

        _step(out, "Transfer 30 from alice to carol, in one transaction")
        ledger.transfer(idempotency_key=f"demo-{run}-transfer", from_user_id="alice",
                        to_user_id="carol", amount="30")  # fmt: skip
        _show(ledger, "alice", out)
        _show(ledger, "carol", out)

        ok = _race(ledger, run, out)
        ok = _bet(make, url, prefix, run, out) and ok
        ok = _credit(ledger, run, out) and ok
        ok = _settle(ledger, run, out) and ok

        _step(out, "carol's history, newest first")
        for item in ledger.history("carol", limit=5).items:
            other = f" (from {item.counterparty_id})" if item.counterparty_id else ""
            out(
                f"  {item.timestamp:%H:%M:%S.%f}  {item.type.value:<6} {item.amount:>8} "
                f"{item.currency}  {item.idempotency_key}{other}"
            )

        _step(out, "Reconcile: every balance equals opening + credits - debits")
        reconciled = ledger.reconcile()
        out(
            f"  checked {reconciled.checked} accounts: "
            f"{'OK' if reconciled.ok else reconciled.mismatches}"
        )
        return 0 if ok and reconciled.ok else 1


def _race(ledger: Ledger, run: str, out: Out) -> bool:
    racer = f"racer-{run}"
    ledger.create_user(racer, balance=RACE_BALANCE)
    _step(out, f"{RACERS} threads race to debit {RACE_DEBIT} each from {racer} "
               f"(balance {RACE_BALANCE})")  # fmt: skip

    def debit(n: int) -> bool:
        try:
            ledger.transact(idempotency_key=f"demo-{run}-race-{n}", user_id=racer,
                            amount=RACE_DEBIT, type="debit")  # fmt: skip
        except InsufficientFunds:
            return False
        return True

    with ThreadPoolExecutor(max_workers=RACERS) as pool:
        outcomes = list(pool.map(debit, range(RACERS)))
    applied = sum(outcomes)
    balance = ledger.get_user_balance(racer)
    in_history = len(ledger.history(racer, limit=1000).items)
    out(
        f"  applied {applied}, refused {RACERS - applied}; balance now {balance.amount:f} "
        f"(never below zero); {in_history} debits in history"
    )
    return balance.amount >= 0 and in_history == applied


class _DemoClock:
    """The bet's clock: real time, moved forward by hand to show a hold expiring."""

    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now


def _bet(make: MakeLedger, url: str, prefix: str, run: str, out: Out) -> bool:
    """Stakes held to the house: a loss captured, a win voided and paid, a round abandoned."""
    clock = _DemoClock()
    ledger = make(url, prefix, clock=clock)
    player, house = f"player-{run}", f"house-{run}"
    ledger.create_user(player, balance="50")
    ledger.create_user(house, balance="1000")

    _step(out, f"A bet: {player} stakes 10, held for the house for 60 s")
    stake = ledger.hold(idempotency_key=f"demo-{run}-round1", user_id=player, amount="10",
                        to_user_id=house, timeout=60)  # fmt: skip
    _show(ledger, player, out)
    _step(out, "The round is lost: the stake is captured by the house")
    lost = ledger.capture(idempotency_key=f"demo-{run}-round1-settle", hold_id=stake.hold_id)
    out(f"  captured {lost.amount:f} {lost.currency}, released {lost.released:f}")
    _show(ledger, player, out)
    _show(ledger, house, out)

    _step(out, "Round 2: stake 10; won at evens: the stake is voided and the house pays 10")
    stake = ledger.hold(idempotency_key=f"demo-{run}-round2", user_id=player, amount="10",
                        to_user_id=house, timeout=60)  # fmt: skip
    ledger.void(idempotency_key=f"demo-{run}-round2-settle", hold_id=stake.hold_id)
    ledger.transfer(idempotency_key=f"demo-{run}-round2-win", from_user_id=house,
                    to_user_id=player, amount="10")  # fmt: skip
    _show(ledger, player, out)

    _step(out, "Round 3: stake 5 for 30 s, then the player walks away")
    stake = ledger.hold(idempotency_key=f"demo-{run}-round3", user_id=player, amount="5",
                        to_user_id=house, timeout=30)  # fmt: skip
    _show(ledger, player, out)
    clock.now += timedelta(seconds=30)
    out("  30 s later (the clock is moved): the stake is spendable again, nothing has run")
    _show(ledger, player, out)
    try:
        ledger.capture(idempotency_key=f"demo-{run}-round3-settle", hold_id=stake.hold_id)
    except HoldExpired as error:
        out(f"  a late capture: HoldExpired: {error}")
    report = ledger.expire_holds([player])
    out(f"  expire-holds wrote {report.released} release into history")
    for item in ledger.history(player, limit=10).items:
        out(f"  {item.kind or 'transfer':<8} {item.type.value:<6} {item.amount:>8f} "
            f"{item.currency}  {item.idempotency_key}")  # fmt: skip
    balance = ledger.get_user_balance(player)
    return (balance.amount, balance.held) == (Decimal("50.00"), Decimal("0.00"))


def _credit(ledger: Ledger, run: str, out: Out) -> bool:
    """A BTC wallet to 8 decimals, and an account on credit: down to minus its limit."""
    wallet, tab = f"btc-{run}", f"tab-{run}"
    _step(out, f"A BTC account (8 decimals): {wallet} gets 0.5 BTC and spends 0.12345678")
    ledger.create_user(wallet, currency="BTC", balance="0.5")
    ledger.transact(idempotency_key=f"demo-{run}-btc", user_id=wallet, amount="0.12345678",
                    type="debit", currency="BTC")  # fmt: skip
    _show(ledger, wallet, out)

    _step(out, f"On credit: {tab} starts at 0 with a credit limit of 100")
    ledger.create_user(tab, balance="0", credit_limit="100")
    ledger.transact(idempotency_key=f"demo-{run}-tab1", user_id=tab, amount="60", type="debit")
    _show(ledger, tab, out)
    try:
        ledger.transact(idempotency_key=f"demo-{run}-tab2", user_id=tab, amount="50",
                        type="debit")  # fmt: skip
    except InsufficientFunds as error:
        out(f"  a debit of 50: InsufficientFunds: {error}")
    ledger.set_credit_limit(idempotency_key=f"demo-{run}-limit", user_id=tab, limit="150")
    out("  the limit is raised to 150 (one request, a 'limit' entry in history)")
    ledger.transact(idempotency_key=f"demo-{run}-tab3", user_id=tab, amount="50", type="debit")
    _show(ledger, tab, out)
    btc, owed = ledger.get_user_balance(wallet), ledger.get_user_balance(tab)
    return (btc.amount, owed.amount) == (Decimal("0.37654322"), Decimal("-110.00"))


def _settle(ledger: Ledger, run: str, out: Out) -> bool:
    """A round settled across three accounts in one posting; a cancelled bet refunded in part."""
    player, house, rake = f"player-{run}", f"house-{run}", f"rake-{run}"
    ledger.create_user(rake, balance="0")
    _step(out, f"Round 4 settles in one posting: {house} pays 20, {player} wins 19, "
               f"{rake} takes 1")  # fmt: skip
    posted = ledger.post(idempotency_key=f"demo-{run}-round4", legs=[
        Leg(house, "20", "debit"), Leg(player, "19", "credit"), Leg(rake, "1", "credit"),
    ])  # fmt: skip
    out(f"  posted {posted.amount:f} {posted.currency} across {len(posted.legs)} accounts")
    for user in (player, house, rake):
        _show(ledger, user, out)
    _step(out, "A bet of 10 is partly cancelled: 4 is refunded, then 7 more is refused")
    bet = f"demo-{run}-bet5"
    ledger.transact(idempotency_key=bet, user_id=player, amount="10", type="debit")
    back = ledger.refund(idempotency_key=f"demo-{run}-bet5-refund", of=bet, amount="4")
    out(f"  refunded {back.amount:f} {back.currency} of {back.of}")
    try:
        ledger.refund(idempotency_key=f"demo-{run}-bet5-refund2", of=bet, amount="7")
    except RefundExceeded as error:
        out(f"  RefundExceeded: {error}")
    _show(ledger, player, out)
    balance = ledger.get_user_balance(player).amount
    return balance == Decimal("63.00")


def _step(out: Out, text: str) -> None:
    out("")
    out(f"== {text}")


def _show(ledger: Ledger, user_id: str, out: Out) -> None:
    try:
        balance = ledger.get_user_balance(user_id)
    except LedgerError as error:
        out(f"  {user_id}: {error}")
        return
    note = "  (opening balance)" if balance.is_opening else ""
    if balance.held:
        note += f"  ({balance.held:f} held)"
    if balance.credit_limit:
        note += f"  (credit limit {balance.credit_limit:f})"
    out(f"  {user_id:<8} {balance.amount:>10} {balance.currency}{note}")
