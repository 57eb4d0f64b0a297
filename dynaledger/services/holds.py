"""Holds: reserve funds now, capture or void them later; expiry is exact at read time.

A hold is a movement of the engine (``movements``, kind ``hold``): its record
under its key and the holder's account change (balance down, ``held`` up, an
entry ``hold:<id>`` added) in one request. A capture or void sends one plan:
its records, the holder's change, the payee's credit and the hold record's
change, each conditional on the hold's state as this ledger knows it
(``KnownRecords``). A ledger that does not know the hold, or whose write shows
the hold moved on, first reads the hold record and the call's own key in one
``BatchGetItem`` (a replay ends there).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any

import attrs

from dynaledger import values
from dynaledger.errors import (
    CurrencyMismatch,
    HoldClosed,
    HoldExceeded,
    HoldExpired,
    HoldNotFound,
    IdempotencyConflict,
    LedgerError,
    UnreadableRecord,
    UserNotFound,
    ValidationError,
)
from dynaledger.models import build
from dynaledger.models.transaction import (
    HOLD_ACTIVE,
    HOLD_CAPTURED,
    HOLD_EXPIRED,
    HOLD_VOIDED,
    KIND_CAPTURE,
    KIND_HOLD,
    KIND_RELEASE,
    KIND_VOID,
    STATUS_APPLIED,
    STATUS_REJECTED,
    Transaction,
)
from dynaledger.models.user import HOLD_PREFIX
from dynaledger.money import EXACT, validate_identifier, validate_metadata
from dynaledger.services import deployment
from dynaledger.services._core import CONTENTION, Context, Retry, new_request_id, run
from dynaledger.services.engine import (
    AccountChange,
    EntryChange,
    HoldChange,
    Plan,
    read_cancellation,
    send,
)
from dynaledger.services.movements import (
    CREDIT_LEG_SUFFIX,
    Request,
    amount_and_currency,
    execute,
)
from dynaledger.services.records import (
    hold_entries,
    load_transaction,
    load_user,
    read_item,
    read_user_raw,
)
from dynaledger.values import EntryType

#: Joined to a final capture's key to key the release of what remained.
RELEASE_SUFFIX = "\x1frelease"
#: The longest timeout accepted: 100 years, in seconds.
MAX_TIMEOUT = 100 * 365 * 86400
#: The shortest timeout: expiry instants are kept to the microsecond.
MIN_TIMEOUT = Decimal("0.000001")
#: A hold's facts, which no capture or void changes: each a condition of theirs.
#: Not ``expires_at``: another client's form of the instant (``...00Z``) reads the same
#: but compares unequal, and the capture's own condition already bounds the expiry.
_HOLD_FACTS = ("user_id", "counterparty_id", "currency", "amount", "kind")


def parse_timeout(timeout: object) -> str | None:
    """Seconds as a plain decimal string, from an int, a float or a timedelta; None stays None."""
    if timeout is None:
        return None
    if isinstance(timeout, timedelta):
        seconds = Decimal(str(timeout.total_seconds()))
    elif isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise ValidationError(
            "timeout", f"must be seconds (int or float) or a timedelta, not {timeout!r}"
        )
    else:
        seconds = Decimal(repr(timeout)) if isinstance(timeout, float) else Decimal(timeout)
    if not seconds.is_finite() or not MIN_TIMEOUT <= seconds <= MAX_TIMEOUT:
        raise ValidationError(
            "timeout", f"must be {MIN_TIMEOUT} to {MAX_TIMEOUT} seconds (times are to the µs)"
        )
    return format(seconds.quantize(MIN_TIMEOUT).normalize(), "f")


def hold(
    ctx: Context,
    *,
    idempotency_key: str,
    user_id: str,
    amount: object,
    currency: str | None = None,
    to_user_id: str | None = None,
    timeout: object = None,
    metadata: object = None,
) -> values.HoldResult:
    """Reserve ``amount`` of ``user_id``'s spendable balance, exactly once per key."""
    key = validate_identifier(idempotency_key, "idempotency_key")
    user = validate_identifier(user_id, "user_id")
    payee = None if to_user_id is None else validate_identifier(to_user_id, "to_user_id")
    if payee == user:
        raise ValidationError("to_user_id", "must differ from user_id")
    seconds = parse_timeout(timeout)
    extra = validate_metadata(metadata)
    value, held, given = amount_and_currency(ctx, user, amount, currency)
    request = Request(
        kind=KIND_HOLD, key=key, user_id=user, counterparty_id=payee, amount=value,
        type=EntryType.DEBIT, currency=held, currency_given=given, timeout=seconds,
        metadata=tuple(extra.items()),
    )  # fmt: skip
    outcome = execute(ctx, request, amount)
    record = outcome.record
    assert record.timestamp is not None  # an applied record
    return values.HoldResult(
        hold_id=record.idempotency_key,
        user_id=record.user_id,
        to_user_id=record.counterparty_id,
        amount=ctx.currencies.present(record.amount, outcome.currency),
        currency=outcome.currency,
        created_at=record.timestamp,
        expires_at=record.expires_at,
        replayed=outcome.replayed,
        metadata=record.metadata or {},
    )


# Capture and void -----------------------------------------------------------------------


@attrs.frozen
class _Close:
    """One capture or void as asked: what its key stands for."""

    kind: str
    key: str
    hold_id: str
    requested: str  # the amount asked for, or "all"
    final: bool
    metadata: tuple[tuple[str, str], ...] = ()

    def differences(self, stored: Transaction) -> list[str]:
        if stored.kind != self.kind:
            return ["kind"]
        checks = [
            ("hold_id", stored.hold_id == self.hold_id),
            ("amount", stored.requested == self.requested),
            ("final", stored.final == str(self.final).lower()),
            ("metadata", (stored.metadata or {}) == dict(self.metadata)),
        ]
        return [name for name, same in checks if not same]


def read_pair(ctx: Context, hold_id: str, key: str) -> tuple[dict[str, Any] | None, ...]:
    """The hold record and the record under ``key``, in one consistent BatchGetItem."""
    table = ctx.models.transaction.Meta.table_name
    name = ctx.models.transaction.idempotency_key.attr_name
    keys: list[Any] = [{name: hold_id}, {name: key}]
    found = ctx.models.connection.batch_get_item(table, keys, consistent_read=True)
    if found.get("UnprocessedKeys"):
        raise Retry(CONTENTION)
    items = {item[name]["S"]: item for item in found.get("Responses", {}).get(table, [])}
    return items.get(hold_id), items.get(key)


def _replay(ctx: Context, close: _Close, raw: dict[str, Any], request_id: str) -> Transaction:
    stored = load_transaction(ctx, raw)
    differences = close.differences(stored)
    if differences:
        raise IdempotencyConflict(close.key, differences)
    return stored


def _active_hold(
    ctx: Context, raw: dict[str, Any] | None, hold_id: str, now: datetime
) -> Transaction:
    """The hold record, checked to be open at ``now``.

    Raises:
        HoldNotFound, HoldClosed, HoldExpired.
    """
    if raw is None:
        raise HoldNotFound(hold_id)
    return _open(ctx, load_transaction(ctx, raw), hold_id, now)


#: The states a hold record may be in; another is a hand edit the ledger refuses.
_HOLD_STATES = (HOLD_ACTIVE, HOLD_CAPTURED, HOLD_VOIDED, HOLD_EXPIRED)


def _open(ctx: Context, record: Transaction, hold_id: str, now: datetime) -> Transaction:
    """``record``, checked to be a hold open at ``now``.

    Raises:
        HoldNotFound, HoldClosed, HoldExpired, UnreadableRecord.
    """
    if not _is_hold(record):
        raise HoldNotFound(hold_id)
    status, _ = _hold_state(ctx, record, hold_id)
    if record.expires_at is not None and (
        status == HOLD_EXPIRED or (status == HOLD_ACTIVE and record.expires_at <= now)
    ):
        raise HoldExpired(hold_id, record.expires_at)
    if status != HOLD_ACTIVE:
        raise HoldClosed(hold_id, status)
    return record


def _is_hold(record: Transaction) -> bool:
    """Whether ``record`` stands for a hold: one placed, not one refused for funds."""
    return record.kind == KIND_HOLD and record.status != STATUS_REJECTED


def _hold_state(ctx: Context, record: Transaction, hold_id: str) -> tuple[str, Decimal]:
    """A hold record's ``holdStatus`` and ``remaining``, refused when (set by hand) the
    ledger cannot read them right.

    Raises:
        UnreadableRecord: No ``holdStatus`` or ``remaining``, a state the ledger does not
            know, or ``expired`` with no instant to have expired at.
    """
    table = ctx.models.transaction.Meta.table_name
    if record.remaining is None or record.hold_status is None:
        raise UnreadableRecord(table, hold_id, "no hold state")
    if record.hold_status not in _HOLD_STATES:
        raise UnreadableRecord(
            table, hold_id, f"holdStatus {record.hold_status!r} is not one of {_HOLD_STATES}"
        )
    if record.hold_status == HOLD_EXPIRED and record.expires_at is None:
        raise UnreadableRecord(table, hold_id, "holdStatus 'expired' without expiresAt")
    return record.hold_status, record.remaining


def _close(ctx: Context, close: _Close, amount: object) -> tuple[Transaction, bool]:
    """Apply a capture or void once per key; the record under its key, and whether replayed.

    With the hold known to this ledger (:class:`~dynaledger.services._core.KnownRecords`)
    and open as known, the plan goes out at once: 1 request. Otherwise, or when
    the hold turns out to have moved on, the hold and the key are read first.
    """
    deployment.ensure(ctx)
    now, request_id = ctx.now(), new_request_id()

    def attempt() -> tuple[Transaction, bool]:
        known = ctx.known.get(close.hold_id)
        if known is not None:
            try:
                plan = _close_plan(ctx, close, _open(ctx, known, close.hold_id, now), amount,
                                   now, request_id)  # fmt: skip
            except LedgerError:
                pass  # as known it refuses: the read tells a replay from a refusal
            else:
                done = _send_close(ctx, close, plan, now, request_id, known=True)
                if done is not None:
                    return done
        hold_raw, stored_raw = read_pair(ctx, close.hold_id, close.key)
        if stored_raw is not None:
            stored = _replay(ctx, close, stored_raw, request_id)
            return stored, stored.request_id != request_id
        held = _active_hold(ctx, hold_raw, close.hold_id, now)
        ctx.known.put(held)
        plan = _close_plan(ctx, close, held, amount, now, request_id)
        done = _send_close(ctx, close, plan, now, request_id, known=False)
        if done is None:
            raise Retry(CONTENTION)  # it changed under us: read it again
        return done

    return run(ctx, attempt)


def _send_close(
    ctx: Context, close: _Close, plan: Plan, now: datetime, request_id: str, *, known: bool
) -> tuple[Transaction, bool] | None:
    """Send a capture's or void's plan: its record and whether replayed; or None when the
    hold is to be read (again): it or its entry is no longer as the plan expects, or,
    for a ``known`` hold, anything but the key refused it, so that the read decides
    the error as it would for a ledger that never saw the hold.
    """
    cancelled = send(ctx, plan, now)
    if cancelled is None:
        _remember(ctx, close.hold_id, plan.holds[0])
        ctx.known.put(plan.records[0])  # a refund of the capture then skips reading it
        return plan.records[0], False
    verdict = read_cancellation(ctx, cancelled)
    if verdict.kind == "stored" and verdict.raw is not None:
        stored = _replay(ctx, close, verdict.raw, request_id)
        return stored, stored.request_id != request_id
    ctx.known.forget(close.hold_id)
    if known or verdict.kind == "stored":  # no stored item came back: read it
        return None
    if verdict.kind == "unknown_user":
        raise UserNotFound(verdict.user_id)
    if verdict.kind == "currency":
        expected = plan.accounts[0].currency
        raise CurrencyMismatch(verdict.user_id, expected=expected, actual=verdict.currency)
    if verdict.kind == "hold" and verdict.raw is not None:
        _active_hold(ctx, verdict.raw, close.hold_id, now)  # closed or expired: raises
    return None


def _remember(ctx: Context, hold_id: str, change: HoldChange) -> None:
    """Keep the hold's state after a capture or void applied ``change`` to it."""
    known = ctx.known.get(hold_id)
    if known is None:
        return
    zero = Decimal(0)
    state = {
        **known.attribute_values,
        "remaining": change.remaining,
        "hold_status": change.status,
        "captured": EXACT.add(known.captured or zero, change.captured),
        "released": EXACT.add(known.released or zero, change.released),
    }
    ctx.known.put(build(ctx.models.transaction, state))


def _close_plan(  # noqa: PLR0917 - the request, the hold as read, and what the call shares
    ctx: Context, close: _Close, held: Transaction, amount: object, now: datetime, request_id: str
) -> Plan:
    currency = held.currency or ctx.default_currency
    remaining = held.remaining or Decimal(0)
    if close.kind == KIND_VOID:
        take = Decimal(0)
    elif amount is None:
        take = remaining
    else:
        take = ctx.currencies.parse_amount(amount, currency)
        if take > remaining:
            raise HoldExceeded(close.hold_id, ctx.currencies.present(remaining, currency),
                               ctx.currencies.present(take, currency), currency)  # fmt: skip
    with localcontext(EXACT):
        release = remaining - take if close.final else Decimal(0)
        left = remaining - take - release
    status = HOLD_ACTIVE if left else (HOLD_VOIDED if close.kind == KIND_VOID else HOLD_CAPTURED)
    model = ctx.models.transaction
    common: dict[str, Any] = {
        "currency": currency, "status": STATUS_APPLIED, "hold_id": close.hold_id,
        "request_id": request_id, "timestamp": now, "metadata": dict(close.metadata) or None,
    }  # fmt: skip
    payee = held.counterparty_id
    if close.kind == KIND_VOID:
        main = model(close.key, user_id=held.user_id, amount=release, type="credit",
                     kind=KIND_VOID, released=release, remaining=left, requested="all",
                     final="true", **common)  # fmt: skip
        records = [main]
    else:
        main = model(close.key, user_id=held.user_id, amount=take, type="debit",
                     kind=KIND_CAPTURE, counterparty_id=payee, released=release, remaining=left,
                     requested=close.requested, final=str(close.final).lower(),
                     **common)  # fmt: skip
        records = [main]
        if payee is not None:
            records.append(model(close.key + CREDIT_LEG_SUFFIX, user_id=payee, amount=take,
                                 type="credit", kind=KIND_CAPTURE, counterparty_id=held.user_id,
                                 transfer_id=close.key, **common))  # fmt: skip
        if release:
            records.append(model(close.key + RELEASE_SUFFIX, user_id=held.user_id,
                                 amount=release, type="credit", kind=KIND_RELEASE,
                                 transfer_id=close.key, **common))  # fmt: skip
    holder = AccountChange(
        held.user_id, currency, balance_delta=release,
        held_delta=EXACT.add(take, release).copy_negate(),
        entry_changes=(EntryChange(close.hold_id, remaining, left),),
        touch_balance=bool(release), role="holder",
    )  # fmt: skip
    accounts = [holder]
    if payee is not None and take:
        accounts.append(AccountChange(payee, currency, balance_delta=take, role="payee"))
    # What this plan was made from: a hold edited in place by hand is read again.
    unchanged = tuple((name, held.attribute_values.get(name)) for name in _HOLD_FACTS)
    change = HoldChange(close.hold_id, remaining, left, take, release, status, live_at=now,
                        request_id=held.request_id, unchanged=unchanged)  # fmt: skip
    return Plan(records=tuple(records), accounts=tuple(accounts), holds=(change,))


def capture(
    ctx: Context,
    *,
    idempotency_key: str,
    hold_id: str,
    amount: object = None,
    final: bool = True,
    metadata: object = None,
) -> values.CaptureResult:
    """Capture ``amount`` (None: all) of a hold; ``final`` releases the rest to the holder."""
    key = validate_identifier(idempotency_key, "idempotency_key")
    hid = validate_identifier(hold_id, "hold_id")
    if key == hid:
        raise IdempotencyConflict(key, ["kind"])  # the key is the hold's own
    if not isinstance(final, bool):
        raise ValidationError("final", f"must be True or False, not {final!r}")
    extra = tuple(validate_metadata(metadata).items())
    requested = "all"
    if amount is not None:
        requested = format(ctx.currencies.parse_amount(amount, None).normalize(), "f")
    close = _Close(KIND_CAPTURE, key, hid, requested, final, extra)
    record, replayed = _close(ctx, close, amount)
    currency = record.currency or ctx.default_currency
    assert record.timestamp is not None
    return values.CaptureResult(
        idempotency_key=key,
        hold_id=hid,
        amount=ctx.currencies.present(record.amount, currency),
        released=ctx.currencies.present(record.released or Decimal(0), currency),
        remaining=ctx.currencies.present(record.remaining or Decimal(0), currency),
        currency=currency,
        timestamp=record.timestamp,
        replayed=replayed,
        metadata=record.metadata or {},
    )


def void(
    ctx: Context, *, idempotency_key: str, hold_id: str, metadata: object = None
) -> values.VoidResult:
    """Release what remains of a hold to its holder."""
    key = validate_identifier(idempotency_key, "idempotency_key")
    hid = validate_identifier(hold_id, "hold_id")
    if key == hid:
        raise IdempotencyConflict(key, ["kind"])  # the key is the hold's own
    extra = tuple(validate_metadata(metadata).items())
    record, replayed = _close(ctx, _Close(KIND_VOID, key, hid, "all", True, extra), None)
    currency = record.currency or ctx.default_currency
    assert record.timestamp is not None
    return values.VoidResult(
        idempotency_key=key,
        hold_id=hid,
        user_id=record.user_id,
        released=ctx.currencies.present(record.amount, currency),
        currency=currency,
        timestamp=record.timestamp,
        replayed=replayed,
        metadata=record.metadata or {},
    )


# Reading holds --------------------------------------------------------------------------


def hold_view(ctx: Context, record: Transaction, now: datetime) -> values.Hold:
    """A hold record as it stands at ``now``: an active one past its expiry is expired.

    Raises:
        UnreadableRecord: Its hold state is one the ledger cannot read right.
    """
    status, remaining = _hold_state(ctx, record, record.idempotency_key)
    currency = record.currency or ctx.default_currency
    released = record.released or Decimal(0)
    if status == HOLD_ACTIVE and record.expires_at is not None and record.expires_at <= now:
        status, released, remaining = HOLD_EXPIRED, EXACT.add(released, remaining), Decimal(0)
    assert record.timestamp is not None
    return values.Hold(
        hold_id=record.idempotency_key, user_id=record.user_id,
        to_user_id=record.counterparty_id, amount=ctx.currencies.present(record.amount, currency),
        currency=currency, status=status, remaining=ctx.currencies.present(remaining, currency),
        captured=ctx.currencies.present(record.captured or Decimal(0), currency),
        released=ctx.currencies.present(released, currency), created_at=record.timestamp,
        expires_at=record.expires_at,
    )  # fmt: skip


def get_hold(ctx: Context, hold_id: str) -> values.Hold:
    """One hold, with one strongly consistent read.

    Raises:
        HoldNotFound: No hold has this id.
    """
    hid = validate_identifier(hold_id, "hold_id")
    now = ctx.now()
    wire = ctx.wire
    item = run(ctx, lambda: read_item(ctx, wire.records_table, wire.record_key, hid))
    if item is None:
        raise HoldNotFound(hid)
    record = load_transaction(ctx, item)
    if not _is_hold(record):
        raise HoldNotFound(hid)
    return hold_view(ctx, record, now)


def holds(ctx: Context, user_id: str) -> list[values.Hold]:
    """An account's active holds at the ledger's now, soonest expiry first.

    One read of the account, then one ``BatchGetItem`` per 100 holds. A hold closed
    between the two reads is left out.

    Raises:
        UnreadableRecord: The account names a hold no hold record stands for (a record
            deleted or rewritten by hand), or a hold record is unreadable.
    """
    user = validate_identifier(user_id, "user_id")
    now = ctx.now()
    raw = run(ctx, lambda: read_user_raw(ctx, user))
    if raw is None:
        raise UserNotFound(user)
    load_user(ctx, raw)
    live = [e.hold_id for e in hold_entries(ctx, raw) if not e.expired(now)]
    table = ctx.models.transaction.Meta.table_name
    name = ctx.models.transaction.idempotency_key.attr_name
    found: dict[str, values.Hold] = {}
    for start in range(0, len(live), 100):
        batch = live[start : start + 100]
        while batch:
            keys: list[Any] = [{name: hold_id} for hold_id in batch]
            reply = run(ctx, lambda k=keys: ctx.models.connection.batch_get_item(  # type: ignore[misc]
                table, k, consistent_read=True))  # fmt: skip
            for item in reply.get("Responses", {}).get(table, []):
                record = load_transaction(ctx, item)
                if _is_hold(record):
                    found[record.idempotency_key] = hold_view(ctx, record, now)
            unprocessed = reply.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
            batch = [key[name]["S"] for key in unprocessed]
    for hold_id in live:
        if hold_id not in found:
            users_table = ctx.models.user.Meta.table_name
            problem = f"{HOLD_PREFIX}{hold_id} names no hold record"
            raise UnreadableRecord(users_table, user, problem)
    return [found[h] for h in live if found[h].status == HOLD_ACTIVE]
