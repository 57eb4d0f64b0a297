"""Releasing expired holds: what a plan adds to free the money of holds past their expiry.

An expired hold's remainder is spendable from the instant it expires (reads
count it so); it leaves the account item only when some write releases it: a
debit, transfer or hold that needs it, or ``expire_holds``. Each release is
conditional on the entry still reading what was seen and having expired at
the releasing call's now, so concurrent and repeated releases are harmless.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Any

import attrs

from dynaledger import values
from dynaledger.errors import UnreadableRecord
from dynaledger.models.transaction import (
    HOLD_EXPIRED,
    KIND_EXPIRY,
    STATUS_APPLIED,
    STATUS_REJECTED,
    Transaction,
)
from dynaledger.money import EXACT, validate_user_ids
from dynaledger.services import deployment
from dynaledger.services._core import Context, new_request_id, run
from dynaledger.services.engine import (
    MAX_ACTIONS,
    AccountChange,
    EntryChange,
    HoldChange,
    Plan,
    Verdict,
    read_cancellation,
    send,
)
from dynaledger.services.records import (
    HoldEntry,
    credit_limit,
    hold_entries,
    load_user,
    problem_of,
    read_user_raw,
)

#: Joined to a hold's id to key the record of its release at expiry.
EXPIRE_SUFFIX = "\x1fexpire"
#: Holds one release-only plan frees: the account, then a record and an update per hold.
RELEASES_PER_PLAN = (MAX_ACTIONS - 1) // 2


def expired_entries(ctx: Context, raw: dict[str, Any], now: datetime) -> list[HoldEntry]:
    """The account's holds expired at ``now``, oldest expiry first."""
    return [entry for entry in hold_entries(ctx, raw) if entry.expired(now)]


def spendable(ctx: Context, verdict: Verdict, now: datetime) -> Decimal:
    """What the account a verdict refused for funds could spend at ``now``: its stored
    balance (the opening balance when none) plus the remainders of its expired holds,
    which a release would return (a refusal's figure)."""
    assert verdict.raw is not None
    stored = verdict.user.balance if verdict.user is not None else None
    with localcontext(EXACT):
        return (ctx.opening_balance if stored is None else stored) + sum(
            (entry.remaining for entry in expired_entries(ctx, verdict.raw, now)), Decimal(0)
        )


def release_plan(
    ctx: Context,
    change: AccountChange,
    entries: list[HoldEntry],
    now: datetime,
    request_id: str,
) -> Plan:
    """``change`` with ``entries`` (expired at ``now``) released into its balance, and their
    hold records closed and their expiry records put: the additions to one plan."""
    with localcontext(EXACT):
        released = sum((entry.remaining for entry in entries), Decimal(0))
        balance_delta = change.balance_delta + released
        floor = None if change.floor is None else change.floor - released
        held_delta = change.held_delta - released
    account = attrs.evolve(
        change,
        balance_delta=balance_delta,
        floor=floor,
        held_delta=held_delta,
        entry_changes=change.entry_changes
        + tuple(EntryChange(e.hold_id, e.remaining, Decimal(0), expired_at=now) for e in entries),
        touch_balance=True,
    )
    records = tuple(
        expiry_record(ctx, change.user_id, change.currency, entry, request_id) for entry in entries
    )
    holds = tuple(
        HoldChange(e.hold_id, e.remaining, Decimal(0), Decimal(0), e.remaining, HOLD_EXPIRED,
                   expired_at=now)
        for e in entries
    )  # fmt: skip
    return Plan(records=records, accounts=(account,), holds=holds)


def expiry_record(
    ctx: Context, user_id: str, currency: str, entry: HoldEntry, request_id: str
) -> Transaction:
    """The history record of an expired hold's release, dated at the instant it expired."""
    return ctx.models.transaction(
        entry.hold_id + EXPIRE_SUFFIX,
        user_id=user_id,
        amount=entry.remaining,
        type="credit",
        currency=currency,
        status=STATUS_APPLIED,
        kind=KIND_EXPIRY,
        hold_id=entry.hold_id,
        transfer_id=entry.hold_id,
        request_id=request_id,
        timestamp=entry.expires_at,
    )


@attrs.define
class Releases:
    """The expired holds a plan releases so that its short accounts can pay, per account.

    Made from the plan as the call built it (``base``). Each cancellation for funds
    adds, for every account it found short, the oldest expired holds that cover
    it, and keeps those chosen before for the other accounts: a plan whose
    accounts each need their expired holds gets them all in one request.
    """

    ctx: Context
    base: Plan
    now: datetime
    request_id: str
    chosen: dict[int, list[HoldEntry]] = attrs.Factory(dict)

    def after(self, sent: Plan, short: Sequence[Verdict]) -> Plan | Verdict:
        """The plan to send next now that ``sent`` was refused for the accounts of ``short``
        (``account`` verdicts, each with the account as the cancellation returned it).

        That is :meth:`next_plan`; or the verdict of the first account that even every
        expired hold released would not cover, when there is one.
        """
        for verdict in short:
            assert verdict.account is not None
            assert verdict.raw is not None
            index = sent.accounts.index(verdict.account)
            entries = _covering(self.ctx, self.base.accounts[index], verdict.raw, self.now)
            if entries is None:
                return verdict
            self.chosen[index] = entries
        return self.next_plan()

    def next_plan(self) -> Plan:
        """``base`` with every chosen hold released in the same request; or, when they
        are more than fit one transaction, a release-only plan of the oldest (send it,
        then this again: each such plan leaves fewer chosen)."""
        room = (MAX_ACTIONS - self.base.actions) // 2
        if sum(len(entries) for entries in self.chosen.values()) <= room:
            return self._with_releases()
        return self._release_only()

    def _with_releases(self) -> Plan:
        """``base`` with every chosen hold released into its account, in the same request."""
        plan = self.base
        for index, entries in self.chosen.items():
            change = self.base.accounts[index]
            added = release_plan(self.ctx, change, entries, self.now, self.request_id)
            accounts = list(plan.accounts)
            accounts[index] = added.accounts[0]
            plan = attrs.evolve(
                plan,
                records=plan.records + added.records,
                accounts=tuple(accounts),
                holds=plan.holds + added.holds,
            )
        return plan

    def _release_only(self) -> Plan:
        """A plan releasing only the chosen holds of as many accounts as fit (at least
        the oldest :data:`RELEASES_PER_PLAN` of the first); they leave the choice."""
        records: tuple[Transaction, ...] = ()
        accounts: tuple[AccountChange, ...] = ()
        holds: tuple[HoldChange, ...] = ()
        actions = 0
        for index in sorted(self.chosen):
            entries = self.chosen[index][:RELEASES_PER_PLAN]
            if accounts and actions + 1 + 2 * len(entries) > MAX_ACTIONS:
                break
            del self.chosen[index]
            change = self.base.accounts[index]
            bare = AccountChange(change.user_id, change.currency, touch_balance=True,
                                 role="holder")  # fmt: skip
            added = release_plan(self.ctx, bare, entries, self.now, self.request_id)
            records, accounts = records + added.records, accounts + added.accounts
            holds += added.holds
            actions += 1 + 2 * len(entries)
        return Plan(records=records, accounts=accounts, holds=holds)


def _covering(
    ctx: Context, change: AccountChange, raw: dict[str, Any], now: datetime
) -> list[HoldEntry] | None:
    """The oldest holds of account ``raw`` expired at ``now`` that cover what ``change``
    lacks; None when nothing is lacking, ``change`` has no floor, or even all would not."""
    if change.floor is None:
        return None
    user = load_user(ctx, raw)
    balance = ctx.opening_balance if user.balance is None else user.balance
    expired = expired_entries(ctx, raw, now)
    with localcontext(EXACT):
        # The floor rule of every debit: balance + credit limit must cover ``floor``.
        shortfall = change.floor - (balance + credit_limit(user))
        if shortfall <= 0 or sum((e.remaining for e in expired), Decimal(0)) < shortfall:
            return None
        chosen, covered = [], Decimal(0)
        for entry in expired:
            if covered >= shortfall:
                break
            chosen.append(entry)
            covered += entry.remaining
    return chosen


def releases_only(plan: Plan, base: Plan) -> bool:
    """True when ``plan`` is a release-only plan :class:`Releases` made for ``base``
    (not ``base`` itself, with or without releases, nor its recorded refusal)."""
    first = plan.records[0]
    return first is not base.records[0] and first.status != STATUS_REJECTED


# Expiry -----------------------------------------------------------------------------------


def release_expired(ctx: Context, user_id: str, now: datetime) -> int:
    """Release every hold of one account expired at ``now``; the number this call released.

    Safe to run concurrently and repeatedly: each release is conditional on
    its entry still being there, unchanged and expired.
    """
    released = 0
    while True:
        raw = run(ctx, lambda: read_user_raw(ctx, user_id))
        if raw is None:
            return released
        user = load_user(ctx, raw)
        expired = expired_entries(ctx, raw, now)
        if not expired:
            return released
        currency = user.currency or ctx.default_currency
        bare = AccountChange(user_id, currency, touch_balance=True, role="holder")
        batch = expired[:RELEASES_PER_PLAN]
        plan = release_plan(ctx, bare, batch, now, new_request_id())

        def attempt(plan: Plan = plan) -> bool:
            cancelled = send(ctx, plan, now)
            if cancelled is None:
                return True
            read_cancellation(ctx, cancelled)  # contention raises Retry
            return False  # someone else released or captured: look again

        if run(ctx, attempt):
            released += len(batch)


def expire_holds(ctx: Context, user_ids: Iterable[str] | None = None) -> values.ExpiryReport:
    """Release every hold expired at the ledger's now, writing each release into history.

    With no ``user_ids``, finds the accounts with holds by a Scan of the
    accounts table filtered on ``held > 0`` (a maintenance command: it reads
    the whole table).
    """
    named = None if user_ids is None else validate_user_ids(user_ids)
    deployment.ensure(ctx)
    now = ctx.now()
    targets = _accounts_with_holds(ctx) if named is None else named
    accounts = released = 0
    problems = []
    for user_id in targets:
        try:
            count = release_expired(ctx, user_id, now)
        except UnreadableRecord as error:  # a hand edit: skipped, the others still released
            problems.append(problem_of(user_id, error))
            continue
        released += count
        accounts += 1 if count else 0
    return values.ExpiryReport(
        checked=len(targets), accounts=accounts, released=released, problems=tuple(problems)
    )


def _accounts_with_holds(ctx: Context) -> list[str]:
    model = ctx.models.user
    table = model.Meta.table_name
    name = model.user_id.attr_name
    found: list[str] = []
    start: dict[str, Any] | None = None
    while True:
        page = run(ctx, lambda s=start: ctx.models.connection.scan(  # type: ignore[misc]
            table, filter_condition=model.held > 0, exclusive_start_key=s,
            consistent_read=True))  # fmt: skip
        found.extend(item[name]["S"] for item in page.get("Items", []))
        start = page.get("LastEvaluatedKey")
        if not start:
            return found
