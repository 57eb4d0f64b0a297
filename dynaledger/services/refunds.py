"""Refunds: give back all or part of an applied movement, exactly once per key.

A refund sends one plan: the refund's records (one per account of the
original, kind ``refund``, ``refundOf`` naming the original), the accounts'
changes reversing the original's (an account the original credited is debited,
with its floor), and the original's ``refunded`` total grown, conditional on
staying at most the original's amount. The original's accounts are only on its
record: a ledger that knows it (``KnownRecords``: it wrote it, or read it
before) sends the plan at once (1 request); one that does not, or whose write
shows the refunded total moved on, first reads the original and its own key in
one consistent ``BatchGetItem`` (a replay ends there), as for a capture.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs

from dynaledger import values
from dynaledger.errors import (
    CurrencyMismatch,
    IdempotencyConflict,
    LedgerError,
    MovementNotFound,
    NotRefundable,
    RefundExceeded,
    UserNotFound,
    ValidationError,
)
from dynaledger.models import build
from dynaledger.models.transaction import (
    KIND_CAPTURE,
    KIND_HOLD,
    KIND_POSTING,
    KIND_REFUND,
    KIND_TRANSACT,
    KIND_TRANSFER,
    STATUS_APPLIED,
    STATUS_REJECTED,
    Transaction,
)
from dynaledger.money import EXACT, validate_identifier, validate_metadata
from dynaledger.services import deployment
from dynaledger.services._core import CONTENTION, Context, Retry, new_request_id, run
from dynaledger.services.accounts import require_user
from dynaledger.services.engine import (
    MAX_ACTIONS,
    AccountChange,
    Plan,
    TallyChange,
    read_cancellation,
    send,
)
from dynaledger.services.expiry import Releases, releases_only
from dynaledger.services.holds import read_pair
from dynaledger.services.postings import (
    MAX_ACCOUNTS,
    ceiling,
    credits,
    leg_key,
    refusal,
    refusal_figures,
    replay,
)
from dynaledger.services.records import (
    Posted,
    account_currency,
    applied_at,
    decode_legs,
    encode_legs,
    load_transaction,
)

#: The kinds a refund can give back.
REFUNDABLE = frozenset({KIND_TRANSACT, KIND_TRANSFER, KIND_CAPTURE, KIND_POSTING})
#: Plans one refund may send: itself, and again with expired holds released (not
#: counting release-only plans that applied: each frees holds for good).
MAX_ROUNDS = 5


@attrs.frozen
class RefundRequest:
    """One refund as asked: what its idempotency key stands for."""

    key: str
    of: str
    requested: str  # the amount asked for, normalized, or "all"
    currency: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()

    def differences(self, stored: Transaction) -> list[str]:
        """The request fields in which ``stored`` asked for something else."""
        if stored.kind != KIND_REFUND:
            return ["kind"]
        checks = [
            ("of", stored.refund_of == self.of),
            ("amount", stored.requested == self.requested),
            ("currency", self.currency is None or stored.currency == self.currency),
            ("metadata", (stored.metadata or {}) == dict(self.metadata)),
        ]
        return [name for name, same in checks if not same]


def original_legs(record: Transaction) -> list[Posted]:
    """The original's effect on each account, in the order its records name them."""
    kind = record.kind or KIND_TRANSACT
    if kind == KIND_POSTING:
        return decode_legs(record.legs or "")
    legs = [Posted(record.user_id, record.amount, record.type)]
    if kind in (KIND_TRANSFER, KIND_CAPTURE) and record.counterparty_id is not None:
        legs.append(Posted(record.counterparty_id, record.amount, "credit"))
    return legs


def total(record: Transaction) -> Decimal:
    """What a movement moved: its amount, or a posting's credits."""
    if record.kind == KIND_POSTING:
        return credits(decode_legs(record.legs or ""))
    return record.amount


def _original(ctx: Context, raw: dict[str, Any] | None, of: str) -> Transaction:
    """The original, checked to be refundable; one with no currency (another client's)
    in its account's, read for it.

    Raises:
        MovementNotFound, NotRefundable.
    """
    if raw is None:
        raise MovementNotFound(of)
    record = _refundable(load_transaction(ctx, raw), of)
    if record.currency is None:  # another client's record: in its account's currency
        held = account_currency(ctx, require_user(ctx, record.user_id))
        record = build(ctx.models.transaction, {**record.attribute_values, "currency": held})
    return record


def _refundable(record: Transaction, of: str) -> Transaction:
    """``record``, checked to be refundable.

    Raises:
        NotRefundable.
        UnreadableRecord: An applied record with no timestamp (another client's): outside
            history and reconcile, so refused here as a replay of its key refuses it.
    """
    kind = record.kind or KIND_TRANSACT
    if record.status == STATUS_REJECTED:
        raise NotRefundable(of, "it was refused")
    applied_at(record)  # none: refused, as a replay of its key refuses it
    if kind == KIND_REFUND:
        raise NotRefundable(of, "it is a refund")
    if kind not in REFUNDABLE:
        advice = " (void it instead)" if kind == KIND_HOLD else ""
        raise NotRefundable(of, f"a {kind} is not refundable{advice}")
    return record


def _plan(  # noqa: PLR0917 - the request, the original as read, and what the call shares
    ctx: Context, request: RefundRequest, original: Transaction, amount: object,
    now: datetime, request_id: str,
) -> Plan:  # fmt: skip
    currency = original.currency or ctx.default_currency
    legs = original_legs(original)
    if len(legs) > MAX_ACCOUNTS:  # stored by another client or an earlier version
        raise NotRefundable(request.of, f"its refund on {len(legs)} accounts would need "
                                        f"{2 * len(legs) + 1} actions; a transaction allows "
                                        f"{MAX_ACTIONS}")  # fmt: skip
    whole = total(original)
    done = original.refunded or Decimal(0)
    left = EXACT.subtract(whole, done)
    posting = original.kind == KIND_POSTING
    if amount is None:
        take = left
    else:
        # A posting's total may pass the largest amount; anything else above it exceeds left.
        take = ctx.currencies.parse_total(amount, currency)
        if posting and take != whole:
            shown = ctx.currencies.present(whole, currency)
            raise ValidationError(
                "amount", f"a posting is refunded whole: give no amount or its total, {shown}"
            )
    if take > left or take <= 0:
        present = ctx.currencies.present
        raise RefundExceeded(request.of, present(left, currency), present(take, currency),
                             currency)  # fmt: skip
    back = [  # a posting's leg of 0 (its legs cancelled out) stays a credit of 0, as merged
        Posted(leg.user_id, leg.amount if posting else take,
               "debit" if leg.type == "credit" and leg.amount else "credit")
        for leg in legs
    ]  # fmt: skip
    model = ctx.models.transaction
    common: dict[str, Any] = {
        "currency": currency, "status": STATUS_APPLIED, "kind": KIND_REFUND,
        "refund_of": request.of, "requested": request.requested, "request_id": request_id,
        "timestamp": now, "metadata": dict(request.metadata) or None,
    }  # fmt: skip
    if len(back) > 1:
        common["transfer_id"] = request.key
    if posting:
        common["legs"] = encode_legs(back)
    records, accounts = [], []
    for index, leg in enumerate(back):
        others = [other.user_id for other in back if other.user_id != leg.user_id]
        counterparty = others[0] if len(back) == 2 else None
        records.append(model(leg_key(request.key, index), user_id=leg.user_id, amount=leg.amount,
                             type=leg.type, counterparty_id=counterparty, **common))  # fmt: skip
        debit = leg.type == "debit"
        accounts.append(AccountChange(
            leg.user_id, currency,
            balance_delta=leg.amount.copy_negate() if debit else leg.amount,
            floor=leg.amount if debit else None, role=leg.type,
            ceiling=None if debit else ceiling(ctx, currency, leg.amount),
        ))  # fmt: skip
    # What this plan was made from: a hand edit of any of it sends the refund back to read.
    unchanged = tuple(
        (name, original.attribute_values.get(name))
        for name in ("user_id", "amount", "type", "kind", "counterparty_id", "legs")
    )
    tally = TallyChange(request.of, take, whole, request_id=original.request_id,
                        unchanged=unchanged, currency=currency)  # fmt: skip
    return Plan(records=tuple(records), accounts=tuple(accounts), tallies=(tally,))


def _refuse(ctx: Context, plan: Plan, user_id: str, balance: Decimal, limit: Decimal) -> Plan:
    """The final refusal's plan: the refund's first record, rejected, naming the account."""
    first = plan.records[0]
    debit = next(change for change in plan.accounts if change.user_id == user_id)
    record = ctx.models.transaction(
        first.idempotency_key, user_id=user_id, amount=debit.balance_delta.copy_abs(),
        type="debit", currency=first.currency, status=STATUS_REJECTED, kind=KIND_REFUND,
        refund_of=first.refund_of, requested=first.requested, request_id=first.request_id,
        rejected_at=first.timestamp, rejected_balance=balance, rejected_limit=limit or None,
        metadata=first.metadata,
    )  # fmt: skip
    return Plan(records=(record,))


def _apply(ctx: Context, request: RefundRequest, amount: object) -> tuple[Transaction, str, bool]:
    """Apply a refund once per key: its first record, the original's kind, whether replayed.

    With the original known to this ledger (:class:`~dynaledger.services._core.KnownRecords`)
    and refundable as known, the plan goes out at once: 1 request. Otherwise, or when
    the original's refunded total moved on, the original and the key are read first.
    """
    deployment.ensure(ctx)
    now, request_id = ctx.now(), new_request_id()

    def planned(original: Transaction) -> Plan:
        currency = original.currency or ctx.default_currency
        if request.currency is not None and request.currency != currency:
            raise CurrencyMismatch(original.user_id, expected=request.currency, actual=currency)
        return _plan(ctx, request, original, amount, now, request_id)

    def attempt() -> tuple[Transaction, str, bool]:
        known = ctx.known.get(request.of)
        if known is not None and known.currency is not None:  # else its account's: read it
            try:
                original = _refundable(known, request.of)
                base = planned(original)
            except LedgerError:
                pass  # as known it refuses: the read tells a replay from a refusal
            else:
                done = _send(ctx, request, original, base, amount, now, request_id, known=True)
                if done is not None:
                    return done
        original_raw, stored_raw = read_pair(ctx, request.of, request.key)
        if stored_raw is not None:
            stored = replay(ctx, request, stored_raw, request_id)
            kind = _kind_of(ctx, original_raw)
            return stored, kind, stored.request_id != request_id
        original = _original(ctx, original_raw, request.of)
        ctx.known.put(original)
        base = planned(original)
        done = _send(ctx, request, original, base, amount, now, request_id, known=False)
        if done is None:
            raise Retry(CONTENTION)  # it changed under us: read it again
        return done

    return run(ctx, attempt)


def _send(  # noqa: PLR0917 - the request, the original, its plan, and what the call shares
    ctx: Context, request: RefundRequest, original: Transaction, base: Plan, amount: object,
    now: datetime, request_id: str, *, known: bool,
) -> tuple[Transaction, str, bool] | None:  # fmt: skip
    """Send a refund's plan (again with expired holds released, or as its final refusal):
    its first record, the original's kind and whether replayed; or None when the
    original is to be read (again): its refunded total is no longer as the plan
    expects, or, for a ``known`` original, anything but the key or the funds refused
    it, so that the read decides the error as it would for a ledger that never saw it.
    """
    currency = original.currency or ctx.default_currency
    kind = original.kind or KIND_TRANSACT
    plan, releases = base, Releases(ctx, base, now, request_id)
    rounds = 0
    while rounds < MAX_ROUNDS:
        rounds += 1
        cancelled = send(ctx, plan, now)
        released_only = releases_only(plan, base)
        if cancelled is None:
            if plan.records[0].status == STATUS_REJECTED:
                raise refusal(ctx, plan.records[0])
            if released_only:  # expired holds released: now the refund itself
                rounds -= 1  # progress that stays, not a round
                plan = releases.next_plan()
                continue
            _remember(ctx, original, base.tallies[0].delta)
            return base.records[0], kind, False
        if released_only:  # another call released them first: look again
            plan, releases = base, Releases(ctx, base, now, request_id)
            continue
        verdict = read_cancellation(ctx, cancelled)
        if verdict.kind == "stored" and verdict.raw is not None:
            stored = replay(ctx, request, verdict.raw, request_id)
            return stored, kind, stored.request_id != request_id
        if verdict.kind == "account":
            after = releases.after(plan, verdict.failures)
            if isinstance(after, Plan):
                plan = after
                continue
            balance, limit = refusal_figures(ctx, after, currency, now, "amount")
            plan = _refuse(ctx, base, after.user_id, balance, limit)
            continue
        ctx.known.forget(request.of)
        if known or verdict.kind == "stored":  # no stored item came back: read it
            return None
        if verdict.kind == "unknown_user":
            raise UserNotFound(verdict.user_id)
        if verdict.kind == "currency":
            raise CurrencyMismatch(verdict.user_id, expected=currency, actual=verdict.currency)
        if verdict.kind == "tally" and verdict.raw is not None:
            now_original = _original(ctx, verdict.raw, request.of)
            _plan(ctx, request, now_original, amount, now, request_id)  # raises when exceeded
        return None
    raise Retry(CONTENTION)


def _remember(ctx: Context, original: Transaction, given: Decimal) -> None:
    """Keep the original's refunded total after a refund gave ``given`` of it back."""
    refunded = EXACT.add(original.refunded or Decimal(0), given)
    state = {**original.attribute_values, "refunded": refunded}
    ctx.known.put(build(ctx.models.transaction, state))


def _kind_of(ctx: Context, raw: dict[str, Any] | None) -> str:
    if raw is None:
        return ""
    return load_transaction(ctx, raw).kind or KIND_TRANSACT


def refund(
    ctx: Context,
    *,
    idempotency_key: str,
    of: str,
    amount: object = None,
    currency: str | None = None,
    metadata: object = None,
) -> values.RefundResult:
    """Give back ``amount`` (None: all that is left) of the movement keyed ``of``."""
    key = validate_identifier(idempotency_key, "idempotency_key")
    original = validate_identifier(of, "of")
    if key == original:
        raise IdempotencyConflict(key, ["kind"])  # the key is the original's own
    named = None if currency is None else ctx.currencies.validate(currency)
    extra = tuple(validate_metadata(metadata).items())
    requested = "all"
    if amount is not None:
        requested = format(ctx.currencies.parse_total(amount, named).normalize(), "f")
    request = RefundRequest(key, original, requested, named, extra)
    record, kind, replayed = _apply(ctx, request, amount)
    money = record.currency or ctx.default_currency
    given = record.amount
    if kind == KIND_POSTING and record.legs:  # every leg reversed: the posting's total
        given = credits(decode_legs(record.legs))
    assert record.timestamp is not None  # an applied record
    return values.RefundResult(
        idempotency_key=key,
        of=original,
        kind=kind,
        amount=ctx.currencies.present(given, money),
        currency=money,
        timestamp=record.timestamp,
        replayed=replayed,
        metadata=record.metadata or {},
    )
