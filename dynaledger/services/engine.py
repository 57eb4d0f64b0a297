"""The movement engine: every operation compiles to a :class:`Plan`, sent as one transaction.

A plan is what one ``TransactWriteItems`` does: records to put (each keyed,
each conditional on its key being new), accounts to change (each with its
conditions: it exists, holds the currency, stays at or above its floor (its
credit limit included) and at or below its ceiling, its hold entries are as
expected), hold records to change (each conditional on the
hold's state) and accounts to check without writing. :func:`send` sends it;
when DynamoDB cancels it, :func:`read_cancellation` turns the reasons, with the
old items DynamoDB returns, into one :class:`Verdict` (the key is taken,
contention, unknown user, currency, an account's condition, a hold's state).
``transact``, ``transfer``, ``hold``, ``capture``, ``void``, ``refund``, ``post``
and the release of expired holds differ only in the plans they compile to.
A credit or debit, the commonest call, sends its plan's two items filled in from a
template its shape's first plan left (:func:`send_items`), and builds its plan
only when the request is cancelled, to read the reasons against it.

PynamoDB sends condition checks, then puts, then updates (accounts, then hold
records), whatever order they are added in; the reasons come back in that
order (tallies last). No two actions of one plan may touch one item, and a plan has at most
100 actions.

``AccountChange`` and ``Plan`` are built on every call and never changed after:
plain attrs classes, since a frozen one's constructor sets each field through
``object.__setattr__`` (twice the cost, measured). The hold, tally and check
changes, built less often, stay frozen.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs
from pynamodb.constants import ALL_OLD, NONE
from pynamodb.exceptions import CancellationReason, TransactWriteError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.operand import Value
from pynamodb.expressions.update import Action

from dynaledger.errors import LedgerError, TooManyHolds, UnreadableRecord, UserNotFound
from dynaledger.models.transaction import HOLD_ACTIVE, STATUS_APPLIED, Transaction
from dynaledger.models.user import HOLD_PREFIX, User
from dynaledger.services import expressions
from dynaledger.services._core import (
    CONTENTION,
    CONTENTION_CODES,
    Context,
    Retry,
    error_code,
    item_too_large,
    key_mismatch,
    too_large_reason,
)
from dynaledger.services.expressions import LedgerWrite
from dynaledger.services.records import account_currency, hold_entries, load_user, read_user_raw

#: DynamoDB's limit on the actions of one transaction.
MAX_ACTIONS = 100
CONDITION_FAILED = "ConditionalCheckFailed"


@attrs.frozen
class EntryChange:
    """A hold entry on an account item that must read ``expected`` and becomes ``remaining``.

    ``remaining`` 0 removes the entry. ``expired_at`` set: the entry must also
    have expired at that instant (a release of an expired hold).
    """

    hold_id: str
    expected: Decimal
    remaining: Decimal
    expired_at: datetime | None = None


@attrs.frozen
class NewEntry:
    """A hold entry to add to an account item."""

    hold_id: str
    remaining: Decimal
    expires_at: datetime | None


@attrs.define
class AccountChange:
    """One account's update and its conditions.

    Attributes:
        user_id: The account.
        currency: The currency it must hold.
        balance_delta: Added to ``balance`` (a never-written balance starts at the opening one).
        floor: The condition ``balance + credit limit >= floor`` on the balance before the
            update, when set: ``floor`` is what the account must be able to pay. On an
            account with a ``creditLimit`` it is ``available >= floor``, one comparison;
            on one without, ``balance >= floor`` as before limits existed.
        ceiling: The condition ``balance <= ceiling`` (``available`` on an account with a
            limit) on the balance before the update, when set: the largest balance minus
            the amount, so that a credit cannot take it past the largest balance. With
            ``credit_limit``, the balance itself (the largest balance minus the new limit),
            so that ``available`` fits it too.
        credit_limit: Sets the account's limit (and derives ``available`` from its
            balance in the same update); only with ``touch_balance`` False.
        held_delta: Added to ``held``.
        new_entries: Hold entries to add (``holdCount`` grows; at most ``max_holds``).
        entry_changes: Hold entries that must read a value and change (or go).
        max_holds: The bound on ``holdCount`` checked when entries are added.
        sets_currency: A failed currency condition here may teach an unnamed currency.
        role: What the account is to the operation (``debit``, ``credit``, ``holder``, ``payee``).
    """

    user_id: str
    currency: str
    balance_delta: Decimal = Decimal(0)
    floor: Decimal | None = None
    ceiling: Decimal | None = None
    credit_limit: Decimal | None = None
    held_delta: Decimal = Decimal(0)
    new_entries: tuple[NewEntry, ...] = ()
    entry_changes: tuple[EntryChange, ...] = ()
    max_holds: int | None = None
    sets_currency: bool = False
    role: str = "debit"
    touch_balance: bool = True

    @property
    def count_delta(self) -> int:
        if not self.entry_changes:
            return len(self.new_entries)
        gone = sum(1 for change in self.entry_changes if change.remaining == 0)
        return len(self.new_entries) - gone


@attrs.frozen
class HoldChange:
    """A hold record's state change, conditional on the state it was read in.

    ``captured`` and ``released`` are added to the record's totals. The
    record must be active with ``expected`` remaining and, with
    ``live_at``, not expired at that instant; with ``expired_at``, expired at it.
    With ``request_id``, it must still be the record written by that request (one
    deleted and written again under its key by hand is another); each of
    ``unchanged`` (as for :class:`TallyChange`) must still hold, so a hold edited in
    place by hand is read again.
    """

    hold_id: str
    expected: Decimal
    remaining: Decimal
    captured: Decimal
    released: Decimal
    status: str
    live_at: datetime | None = None
    expired_at: datetime | None = None
    request_id: str | None = None
    unchanged: tuple[tuple[str, object], ...] = ()


@attrs.frozen
class TallyChange:
    """A record's running total ``field`` grows by ``delta``, staying at most ``limit``.

    The record must be applied (or have no status); its total (absent: 0) must be at most
    ``limit - delta`` before the change. A refund adds to its original's
    ``refunded`` this way, so concurrent refunds never exceed the original.
    With ``request_id``, it must still be the record written by that request; each of
    ``unchanged`` (a model attribute's name and the value the plan was made from, None
    for absent) must still hold, which also guards records no request id names (another
    client's) against a hand edit. With ``currency``, the record must name it or none
    (another client's: in its account's, which the plan's account conditions check).
    """

    key: str
    delta: Decimal
    limit: Decimal
    field: str = "refunded"
    request_id: str | None = None
    unchanged: tuple[tuple[str, object], ...] = ()
    currency: str | None = None


@attrs.frozen
class AccountCheck:
    """An account that must exist and hold ``currency``; nothing is written to it."""

    user_id: str
    currency: str


@attrs.define
class Plan:
    """One transaction: records, account changes, hold changes, checks and record tallies."""

    records: tuple[Transaction, ...] = ()
    accounts: tuple[AccountChange, ...] = ()
    holds: tuple[HoldChange, ...] = ()
    checks: tuple[AccountCheck, ...] = ()
    tallies: tuple[TallyChange, ...] = ()

    @property
    def actions(self) -> int:
        return (
            len(self.records) + len(self.accounts) + len(self.holds) + len(self.checks)
            + len(self.tallies)
        )  # fmt: skip

    def merge(self, other: Plan) -> Plan:
        return Plan(
            self.records + other.records,
            self.accounts + other.accounts,
            self.holds + other.holds,
            self.checks + other.checks,
            self.tallies + other.tallies,
        )


# Compiling ----------------------------------------------------------------------------


def _hold_update(ctx: Context, change: HoldChange) -> tuple[list[Action], Condition]:
    model = ctx.models.transaction
    zero = Decimal(0)
    actions: list[Action] = [
        model.remaining.set(change.remaining),
        model.hold_status.set(change.status),
    ]
    for attribute, delta in ((model.captured, change.captured), (model.released, change.released)):
        if delta:
            actions.append(attribute.set((attribute | zero) + Value(delta, attribute=attribute)))
    condition = (model.hold_status == HOLD_ACTIVE) & (model.remaining == change.expected)
    if change.live_at is not None:
        condition &= model.expires_at.does_not_exist() | (model.expires_at > change.live_at)
    if change.expired_at is not None:
        condition &= model.expires_at <= change.expired_at
    return actions, _same_record(model, condition, change.request_id, change.unchanged)


def _same_record(
    model: type[Transaction],
    condition: Condition,
    request_id: str | None,
    unchanged: tuple[tuple[str, object], ...],
) -> Condition:
    """``condition``, and the record still written by ``request_id`` (when given) with
    each attribute of ``unchanged`` still the value the plan was made from (None: absent)."""
    if request_id is not None:
        condition &= model.request_id == request_id
    for name, value in unchanged:
        stored = getattr(model, name)
        condition &= stored.does_not_exist() if value is None else stored == value
    return condition


def _tally_update(ctx: Context, change: TallyChange) -> tuple[list[Action], Condition]:
    model = ctx.models.transaction
    attribute = getattr(model, change.field)
    zero = Decimal(0)
    delta = Value(change.delta, attribute=attribute)
    actions: list[Action] = [attribute.set((attribute | zero) + delta)]
    bound = Value(change.limit - change.delta, attribute=attribute)
    # Applied: as dynaledger writes it, or with no status, as other clients write theirs.
    applied = model.status.does_not_exist() | (model.status == STATUS_APPLIED)
    condition = applied & (attribute.does_not_exist() | (attribute <= bound))
    if change.currency is not None:
        condition &= model.currency.does_not_exist() | (model.currency == change.currency)
    return actions, _same_record(model, condition, change.request_id, change.unchanged)


# Sending ------------------------------------------------------------------------------


@attrs.frozen
class Cancellation:
    """A cancelled plan's reasons, each beside what it was for."""

    plan: Plan
    error: TransactWriteError
    checks: tuple[CancellationReason | None, ...]
    records: tuple[CancellationReason | None, ...]
    accounts: tuple[CancellationReason | None, ...]
    holds: tuple[CancellationReason | None, ...]
    tallies: tuple[CancellationReason | None, ...] = ()


def send(ctx: Context, plan: Plan, now: datetime) -> Cancellation | None:
    """Send ``plan`` as one TransactWriteItems; None when applied, else its cancellation."""
    if plan.actions > MAX_ACTIONS:
        raise LedgerError(f"a plan of {plan.actions} actions exceeds DynamoDB's {MAX_ACTIONS}")
    records, wire = ctx.models.transaction, ctx.wire
    opening, default = ctx.opening_balance, ctx.default_currency
    try:
        with LedgerWrite(connection=ctx.models.connection, return_consumed_capacity=NONE) as write:
            for check in plan.checks:
                write.add_condition_check(
                    expressions.account_check(wire, check.user_id, check.currency, default)
                )
            for record in plan.records:
                write.add_put(expressions.record_put(wire, record))
            for change in plan.accounts:
                write.add_update(
                    expressions.account_update(
                        wire, change, opening=opening, default_currency=default, now=now
                    )
                )
            for hold in plan.holds:
                actions, condition = _hold_update(ctx, hold)
                write.update(
                    records(hold.hold_id), actions=actions, condition=condition,
                    return_values=ALL_OLD,
                )  # fmt: skip
            for tally in plan.tallies:
                actions, condition = _tally_update(ctx, tally)
                write.update(
                    records(tally.key), actions=actions, condition=condition,
                    return_values=ALL_OLD,
                )  # fmt: skip
    except TransactWriteError as error:
        return cancellation(ctx, plan, error)
    return None


def send_items(
    ctx: Context, put: dict[str, Any], update: dict[str, Any]
) -> TransactWriteError | None:
    """Send one put and one update built ahead as one TransactWriteItems, as :func:`send` would.

    A transact's two items, filled in from its shape's template (see
    :class:`~dynaledger.services.expressions.TransactTemplate`): None when
    applied, else the error, for :func:`cancellation` with the plan they came from.
    """
    try:
        with LedgerWrite(connection=ctx.models.connection, return_consumed_capacity=NONE) as write:
            write.add_put(put)
            write.add_update(update)
    except TransactWriteError as error:
        return error
    return None


def cancellation(ctx: Context, plan: Plan, error: TransactWriteError) -> Cancellation:
    """``plan``'s cancellation from ``error``, each reason beside what it was for.

    Raises:
        TooManyHolds: DynamoDB refused the request whole for an account item's size.
        UnreadableRecord: It refused the request whole for an account's values.
        TransactWriteError: ``error`` itself, when it carries no reasons otherwise.
    """
    reasons = list(error.cancellation_reasons or [])
    if not reasons and item_too_large(error):  # moto's form: refused whole, for an item
        for change in plan.accounts:
            _refuse_full_account(change)
    if not reasons and error_code(error) == "ValidationException" and not key_mismatch(error):
        # Refused whole for an item's values (moto: a balance stored as a BOOL).
        _refuse_unreadable(ctx, [change.user_id for change in plan.accounts])
    if not reasons:
        raise error
    reasons += [None] * (plan.actions - len(reasons))
    counts = [
        len(plan.checks), len(plan.records), len(plan.accounts), len(plan.holds),
        len(plan.tallies),
    ]  # fmt: skip
    parts, start = [], 0
    for count in counts:
        parts.append(tuple(reasons[start : start + count]))
        start += count
    return Cancellation(plan, error, *parts)


# Reading a cancellation ---------------------------------------------------------------


@attrs.frozen
class Verdict:
    """What a cancellation means, the first that applies in this order.

    ``kind`` is one of:

    - ``stored``: the first record's key is taken; ``raw`` is the stored record
      (None when the server returned no old item);
    - ``unknown_user``: ``user_id`` does not exist;
    - ``unknown_check``: an account check failed (no item is returned for those);
    - ``currency``: ``account`` holds ``currency``, not the plan's;
    - ``hold``: a hold record's state condition failed; ``raw`` is the record or None;
    - ``tally``: a record's tally condition failed (``hold_id`` names the record's
      key); ``raw`` is the record as it is, or None;
    - ``account``: an account's other conditions failed (funds, hold entries,
      the bound on holds); ``user`` and ``raw`` are the account as it is, and
      ``failures`` holds an ``account`` verdict for every account that failed so,
      in the plan's order (this one first).
    """

    kind: str
    user_id: str = ""
    currency: str = ""
    account: AccountChange | None = None
    user: User | None = None
    raw: dict[str, Any] | None = None
    hold_id: str = ""
    failures: tuple[Verdict, ...] = ()


def _failed(reason: CancellationReason | None) -> bool:
    return reason is not None and reason.code == CONDITION_FAILED


def read_cancellation(ctx: Context, cancelled: Cancellation) -> Verdict:  # noqa: PLR0911, PLR0912 - one return per kind, in order
    """Tell what cancelled a plan, from the reasons and the old items alone.

    Raises:
        Retry: Contention (the attempt is to be sent again).
        LedgerError: A reason no plan expects.
    """
    plan = cancelled.plan
    if cancelled.records and _failed(cancelled.records[0]):
        reason = cancelled.records[0]
        return Verdict("stored", raw=reason.raw_item if reason is not None else None)
    every = [
        *cancelled.checks, *cancelled.records, *cancelled.accounts, *cancelled.holds,
        *cancelled.tallies,
    ]  # fmt: skip
    if any(reason is not None and reason.code in CONTENTION_CODES for reason in every):
        raise Retry(CONTENTION) from cancelled.error
    failed: list[tuple[AccountChange, User, dict[str, Any]]] = []
    for change, reason in zip(plan.accounts, cancelled.accounts, strict=True):
        if not _failed(reason):
            continue
        assert reason is not None
        if reason.raw_item is None:
            return Verdict("unknown_user", user_id=change.user_id, account=change)
        failed.append((change, load_user(ctx, reason.raw_item), reason.raw_item))
    for change, user, _ in failed:
        held = account_currency(ctx, user)
        if held != change.currency:
            return Verdict("currency", user_id=change.user_id, currency=held, account=change)
    for check, reason in zip(plan.checks, cancelled.checks, strict=True):
        if _failed(reason):
            return Verdict("unknown_check", user_id=check.user_id)
    for hold, reason in zip(plan.holds, cancelled.holds, strict=True):
        if _failed(reason):
            raw = reason.raw_item if reason is not None else None
            if raw is None and hold.expired_at is not None:  # a release: nothing reads first
                _refuse_entry_without_hold(ctx, plan, hold.hold_id)
            return Verdict("hold", raw=raw, hold_id=hold.hold_id)
    for tally, reason in zip(plan.tallies, cancelled.tallies, strict=True):
        if _failed(reason):
            raw = reason.raw_item if reason is not None else None
            return Verdict("tally", raw=raw, hold_id=tally.key)
    if failed:
        failures = []
        for change, user, raw in failed:
            _refuse_entries_unlike_their_holds(ctx, plan, change, raw)
            failures.append(
                Verdict("account", user_id=change.user_id, account=change, user=user, raw=raw)
            )
        return attrs.evolve(failures[0], failures=tuple(failures))
    for change, reason in zip(plan.accounts, cancelled.accounts, strict=True):
        if reason is not None and too_large_reason(reason.message):
            _refuse_full_account(change)
    _refuse_unreadable_accounts(ctx, cancelled)
    codes = [reason.code if reason else "None" for reason in every]
    said = "; ".join(
        f"{reason.code}: {reason.message}" for reason in every if reason and reason.message
    )
    raise LedgerError(
        f"transaction cancelled for an unexpected reason: {codes}" + (f" ({said})" if said else "")
    )


def _refuse_full_account(change: AccountChange) -> None:
    """Raise when ``change`` adds a hold entry to an account whose item DynamoDB found
    would pass 400 KB: the account has no room for another hold (sending again would
    never succeed). Other changes do not grow an item by more than a few bytes.

    Raises:
        TooManyHolds: Naming the account, ``item_full``.
    """
    if change.new_entries:
        raise TooManyHolds(change.user_id, change.max_holds or 0, item_full=True)


def _refuse_entry_without_hold(ctx: Context, plan: Plan, hold_id: str) -> None:
    """Raise when an account's entry names a hold that has no record.

    A hold's record and its entry are written and closed together, so an
    entry without its record (a hand delete) stays so: sending again would
    never succeed.

    Raises:
        UnreadableRecord: Naming the account and its entry.
    """
    for change in plan.accounts:
        if any(entry.hold_id == hold_id for entry in change.entry_changes):
            raise UnreadableRecord(
                ctx.models.user.Meta.table_name, change.user_id,
                f"{HOLD_PREFIX}{hold_id} is the entry of a hold that has no record",
            )  # fmt: skip


def _refuse_entries_unlike_their_holds(
    ctx: Context, plan: Plan, change: AccountChange, raw: dict[str, Any]
) -> None:
    """Raise when an account's entry disagrees with its hold's record, read in the same
    request: the hold's condition held, so the entry is missing or changed by hand, and
    sending again would never succeed.

    Raises:
        UnreadableRecord: Naming the account, the entry and what the hold's record says.
    """
    checked = {hold.hold_id for hold in plan.holds}
    wanted = [entry for entry in change.entry_changes if entry.hold_id in checked]
    stored = {e.hold_id: e.remaining for e in hold_entries(ctx, raw)} if wanted else {}
    for entry in wanted:
        name = HOLD_PREFIX + entry.hold_id
        found = stored.get(entry.hold_id)
        if found != entry.expected:
            shown = "missing" if found is None else f"{found} remaining"
            raise UnreadableRecord(
                ctx.models.user.Meta.table_name, change.user_id,
                f"{name} is {shown}, its hold's record has {entry.expected} remaining",
            )  # fmt: skip


def _refuse_unreadable_accounts(ctx: Context, cancelled: Cancellation) -> None:
    """Read each account whose update failed for a reason no condition gives.

    An item DynamoDB cannot update as asked (a ``balance`` stored as a string, a
    number past its 38 digits) fails with a reason such as ``ValidationError``
    and no old item. One read per such account (on this failure only) tells
    whether it is one the ledger cannot read.

    Raises:
        UnreadableRecord: Such an account breaks the ledger's rules.
    """
    _refuse_unreadable(ctx, [
        change.user_id
        for change, reason in zip(cancelled.plan.accounts, cancelled.accounts, strict=True)
        if reason is not None and reason.code != CONDITION_FAILED
    ])  # fmt: skip


def _refuse_unreadable(ctx: Context, user_ids: list[str]) -> None:
    """Read each account (on a failure path only); raise for one the ledger cannot read.

    Raises:
        UnreadableRecord: Such an account breaks the ledger's rules.
    """
    for user_id in user_ids:
        raw = read_user_raw(ctx, user_id)
        if raw is not None:
            load_user(ctx, raw)


def raise_unknown(verdict: Verdict) -> None:
    """Raise :class:`UserNotFound` for an ``unknown_user`` verdict."""
    if verdict.kind == "unknown_user":
        raise UserNotFound(verdict.user_id)
