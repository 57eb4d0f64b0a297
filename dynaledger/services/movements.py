"""Money movements: credits, debits and transfers, each one DynamoDB transaction.

A movement is one ``TransactWriteItems``: a conditional put of its record
(the idempotency key must be new) and a conditional update of each account
(it must exist, hold the currency, when debited not go below minus its
credit limit, and when credited not go past the currency's largest balance).
When DynamoDB cancels it, the cancellation reasons, with the old items
returned, tell replay, conflict, unknown user, currency and funds apart with
no extra read.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs
from pynamodb.constants import ALL_OLD
from pynamodb.exceptions import CancellationReason, TransactWriteError
from pynamodb.transactions import TransactWrite

from dynaledger import values
from dynaledger.errors import (
    CurrencyMismatch,
    IdempotencyConflict,
    InsufficientFunds,
    LedgerError,
    TooManyHolds,
    ValidationError,
)
from dynaledger.models import build
from dynaledger.models.attributes import format_timestamp
from dynaledger.models.transaction import (
    HOLD_ACTIVE,
    KIND_HOLD,
    KIND_TRANSACT,
    KIND_TRANSFER,
    STATUS_APPLIED,
    STATUS_REJECTED,
    Transaction,
)
from dynaledger.money import EXACT, validate_identifier, validate_metadata
from dynaledger.services import deployment, expressions
from dynaledger.services._core import (
    CONTENTION,
    CONTENTION_CODES,
    Context,
    Retry,
    new_request_id,
    note_own_success,
    run,
)
from dynaledger.services.accounts import require_user
from dynaledger.services.engine import (
    CONDITION_FAILED,
    AccountChange,
    AccountCheck,
    Cancellation,
    NewEntry,
    Plan,
    Verdict,
    cancellation,
    raise_unknown,
    read_cancellation,
    send,
    send_items,
)
from dynaledger.services.expiry import Releases, spendable
from dynaledger.services.records import (
    account_currency,
    applied_at,
    credit_limit,
    load_transaction,
    load_user,
    read_transaction,
)
from dynaledger.values import EntryType, parse_type

#: Joins a transfer's key to the key of its credit leg. User keys cannot hold
#: control characters, so no key a caller picks can collide with a leg.
LEG_SEPARATOR = "\x1f"
CREDIT_LEG_SUFFIX = LEG_SEPARATOR + "credit"
#: Active holds one account may carry: each is an attribute of the account item
#: (at most about 320 bytes with a 255-character id), and an item is at most 400 KB.
MAX_HOLDS = 1000
#: Requests one movement may send: itself, and plans releasing expired holds it needs.
MAX_ROUNDS = 25


@attrs.define
class Request:
    """One movement as asked for, normalized: what an idempotency key stands for.

    A transfer is the debit of ``user_id`` and the credit of ``counterparty_id``.
    Built per call and never changed after (not frozen: see ``services/engine.py``).
    """

    kind: str
    key: str
    user_id: str
    amount: Decimal
    type: EntryType
    currency: str
    counterparty_id: str | None = None
    currency_given: bool = True
    timeout: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()

    @property
    def fingerprint(self) -> str:
        """A digest of every field that identifies the request.

        SHA-256 of the fields joined by U+001F, the amount as all its digits without
        trailing zeros after the point (whatever the caller's decimal context).
        """
        amount = f"{self.amount:f}"
        if "." in amount:  # the normalized digits: no trailing zeros after the point
            amount = amount.rstrip("0").rstrip(".")
        text = (
            f"v1\x1f{self.kind}\x1f{self.user_id}\x1f{self.counterparty_id or ''}\x1f"
            f"{amount}\x1f{self.type._value_}\x1f{self.currency}"
        )
        if self.kind == KIND_HOLD:
            text += f"\x1f{self.timeout or ''}"
        for key, value in self.metadata:
            text += f"\x1f{key}={value}"
        return hashlib.sha256(text.encode()).hexdigest()

    def differences(self, stored: Transaction, stored_currency: str) -> list[str]:
        """The request fields, by their API names, in which ``stored`` asked for something else.

        ``stored_currency`` is the record's currency, or its account's when it names none.
        """
        transfer = self.kind == KIND_TRANSFER
        paired = self.kind in (KIND_TRANSFER, KIND_HOLD)
        user_field = "from_user_id" if transfer else "user_id"
        checks = [
            ("kind", (stored.kind or KIND_TRANSACT) == self.kind),
            (user_field, stored.user_id == self.user_id),
            ("to_user_id", stored.counterparty_id == self.counterparty_id),
            ("amount", stored.amount == self.amount),
            ("type", stored.type == self.type.value),
            # A caller who named no currency asked for the account's, whatever it is.
            (
                "currency",
                not self.currency_given or stored_currency == self.currency,
            ),
        ]
        if self.kind == KIND_HOLD:
            checks.append(("timeout", stored.timeout == self.timeout))
        checks.append(("metadata", (stored.metadata or {}) == dict(self.metadata)))
        return [name for name, same in checks if not same and (paired or name != "to_user_id")]


@attrs.define
class _Outcome:
    """A stored record read back: the movement as it was applied."""

    record: Transaction
    currency: str
    replayed: bool


class _CurrencyLearned(Exception):
    """The caller named no currency, and the account holds this one."""

    def __init__(self, currency: str) -> None:
        self.currency = currency
        super().__init__(currency)


def transact(
    ctx: Context,
    *,
    idempotency_key: str,
    user_id: str,
    amount: object,
    type: object,
    currency: str | None = None,
    metadata: object = None,
) -> values.TransactResult:
    """Credit or debit one account exactly once per idempotency key."""
    key = validate_identifier(idempotency_key, "idempotency_key")
    user = validate_identifier(user_id, "user_id")
    entry_type = parse_type(type)
    extra = validate_metadata(metadata)
    value, held, given = amount_and_currency(ctx, user, amount, currency)
    request = Request(
        kind=KIND_TRANSACT,
        key=key,
        user_id=user,
        amount=value,
        type=entry_type,
        currency=held,
        currency_given=given,
        metadata=tuple(extra.items()),
    )
    outcome = execute(ctx, request, amount)
    # A stored record differing from the request in key, account or type raised
    # IdempotencyConflict; the rest is read as stored, without PynamoDB's descriptors.
    stored = outcome.record.attribute_values
    applied: Decimal = stored["amount"]
    if applied is not value:  # not the record this call built: read back, maybe trimmed
        applied = ctx.currencies.present(applied, outcome.currency)
    return values.TransactResult(
        idempotency_key=key,
        user_id=user,
        amount=applied,
        type=entry_type,
        currency=outcome.currency,
        timestamp=applied_at(outcome.record),
        replayed=outcome.replayed,
        metadata=stored.get("metadata") or {},
    )


def transfer(
    ctx: Context,
    *,
    idempotency_key: str,
    from_user_id: str,
    to_user_id: str,
    amount: object,
    currency: str | None = None,
    metadata: object = None,
) -> values.TransferResult:
    """Move money between two accounts of one currency, exactly once per idempotency key."""
    key = validate_identifier(idempotency_key, "idempotency_key")
    payer = validate_identifier(from_user_id, "from_user_id")
    payee = validate_identifier(to_user_id, "to_user_id")
    if payer == payee:
        raise ValidationError("to_user_id", "must differ from from_user_id")
    extra = validate_metadata(metadata)
    value, held, given = amount_and_currency(ctx, payer, amount, currency)
    request = Request(
        kind=KIND_TRANSFER,
        key=key,
        user_id=payer,
        counterparty_id=payee,
        amount=value,
        type=EntryType.DEBIT,
        currency=held,
        currency_given=given,
        metadata=tuple(extra.items()),
    )
    outcome = execute(ctx, request, amount)
    record = outcome.record
    return values.TransferResult(
        idempotency_key=record.idempotency_key,
        from_user_id=record.user_id,
        to_user_id=record.counterparty_id or "",
        amount=ctx.currencies.present(record.amount, outcome.currency),
        currency=outcome.currency,
        timestamp=applied_at(record),
        replayed=outcome.replayed,
        metadata=record.metadata or {},
    )


def amount_and_currency(
    ctx: Context, user_id: str, amount: object, currency: str | None
) -> tuple[Decimal, str, bool]:
    """The amount checked against its currency, the currency, and whether the caller named it.

    With no currency named, the amount is sent in the default currency when it
    fits it; an account in another currency is then learnt from the
    cancellation. An amount with more decimals than the default currency
    allows can only be judged by the account's own currency, so that is read
    first (one more request, on this path only).
    """
    money = ctx.currencies
    if currency is not None:
        held = money.validate(currency)
        return money.parse_amount(amount, held), held, True
    try:  # the usual case: it fits the default currency
        return money.parse_amount(amount, ctx.default_currency), ctx.default_currency, False
    except ValidationError:
        pass
    # Refused by every currency (raised here, naming that rule), or more precise than the
    # default allows: the account's own currency decides.
    money.parse_amount(amount, None)
    held = account_currency(ctx, require_user(ctx, user_id))
    return money.parse_amount(amount, held), held, True


def execute(ctx: Context, request: Request, raw_amount: object) -> _Outcome:
    """Apply ``request``, learning the account's currency once if the caller gave none.

    The record is remembered (a later capture of a hold, or refund of the
    movement, then skips reading it).
    """
    deployment.ensure(ctx)
    movement = _Movement(ctx, request, request_id=new_request_id(), now=ctx.now())
    try:
        outcome = run(ctx, movement.attempt)
    except _CurrencyLearned as learned:
        # The caller named no currency and the account holds another one:
        # check the amount against that currency's minor unit and go again.
        request = attrs.evolve(
            request,
            currency=learned.currency,
            amount=ctx.currencies.parse_amount(raw_amount, learned.currency),
            currency_given=True,
        )
        outcome = run(ctx, attrs.evolve(movement, request=request).attempt)
    ctx.known.put(outcome.record)
    return outcome


@attrs.define
class _Movement:
    """One call's movement: the request with the id and time every attempt of it shares."""

    ctx: Context
    request: Request
    request_id: str
    now: datetime

    def records(self) -> list[Transaction]:
        """The records to put: one, or for a transfer the debit and the credit leg."""
        request = self.request
        model = self.ctx.models.transaction
        fields: dict[str, Any] = {
            "idempotency_key": request.key,
            "user_id": request.user_id,
            "type": request.type._value_,
            "amount": request.amount,
            "currency": request.currency,
            "status": STATUS_APPLIED,
            "kind": request.kind,
            "fingerprint": request.fingerprint,
            "request_id": self.request_id,
            "timestamp": self.now,
        }
        if request.metadata:
            fields["metadata"] = dict(request.metadata)
        if request.kind == KIND_TRANSACT:
            return [build(model, fields)]
        if request.kind == KIND_HOLD:
            expires = None
            if request.timeout is not None:
                expires = self.now + timedelta(seconds=float(request.timeout))
            hold = {
                "counterparty_id": request.counterparty_id, "hold_id": request.key,
                "hold_status": HOLD_ACTIVE, "expires_at": expires, "timeout": request.timeout,
                "remaining": request.amount, "captured": Decimal(0), "released": Decimal(0),
            }  # fmt: skip
            return [build(model, {**fields, **hold})]
        payee = request.counterparty_id
        debit = {"counterparty_id": payee, "transfer_id": request.key}
        credit = {
            "idempotency_key": request.key + CREDIT_LEG_SUFFIX, "user_id": payee, "type": "credit",
            "counterparty_id": request.user_id, "transfer_id": request.key,
        }  # fmt: skip
        return [build(model, {**fields, **debit}), build(model, {**fields, **credit})]

    def plan(self) -> Plan:
        """The records and the account changes: the debited account first."""
        request = self.request
        amount = request.amount
        if request.kind == KIND_TRANSACT:
            debit = request.type is EntryType.DEBIT
            only = AccountChange(
                request.user_id, request.currency,
                balance_delta=amount.copy_negate() if debit else amount,
                floor=amount if debit else None, ceiling=None if debit else self._ceiling(),
                sets_currency=True, role="debit" if debit else "credit",
            )  # fmt: skip
            return Plan(records=tuple(self.records()), accounts=(only,))
        if request.kind == KIND_HOLD:
            records = self.records()
            entry = NewEntry(request.key, amount, records[0].expires_at)
            holder = AccountChange(
                request.user_id, request.currency, balance_delta=amount.copy_negate(),
                floor=amount, held_delta=amount, new_entries=(entry,), max_holds=MAX_HOLDS,
                sets_currency=True, role="holder",
            )  # fmt: skip
            checks: tuple[AccountCheck, ...] = ()
            if request.counterparty_id is not None:
                checks = (AccountCheck(request.counterparty_id, request.currency),)
            return Plan(records=tuple(records), accounts=(holder,), checks=checks)
        payer = AccountChange(request.user_id, request.currency, balance_delta=amount.copy_negate(),
                              floor=amount, sets_currency=True)  # fmt: skip
        payee = AccountChange(request.counterparty_id or "", request.currency,
                              balance_delta=amount, ceiling=self._ceiling(),
                              role="credit")  # fmt: skip
        return Plan(records=tuple(self.records()), accounts=(payer, payee))

    def _ceiling(self) -> Decimal:
        """The largest balance a credited account may hold before this credit."""
        largest = self.ctx.currencies.max_balance(self.request.currency)
        return EXACT.subtract(largest, self.request.amount)

    def attempt(self) -> _Outcome:
        """Send the movement as one TransactWriteItems; read a cancellation's reasons.

        A debit refused for funds that sit in expired holds goes again with
        those holds released in the same request.
        """
        first = self._send_first()
        if isinstance(first, _Outcome):
            return first
        base, cancelled = first
        plan, sent = base, 1
        while True:
            following = self._after(base, plan, cancelled)
            if isinstance(following, _Outcome):
                return following
            if sent == MAX_ROUNDS:
                raise Retry(CONTENTION)
            plan, sent = following, sent + 1
            cancelled = send(self.ctx, plan, self.now)

    def _send_first(self) -> _Outcome | tuple[Plan, Cancellation | None]:
        """The first request: the movement itself; its plan and cancellation unless applied."""
        if self.request.kind == KIND_TRANSACT:
            record, refused = self._send_transact()
            if refused is None:
                return _Outcome(record, self.request.currency, replayed=False)
            base = self.plan()  # the same record and update: what the reasons are read against
            return base, cancellation(self.ctx, base, refused)
        base = self.plan()
        return base, send(self.ctx, base, self.now)

    def _after(  # noqa: PLR0911 - one return per meaning of an answer
        self, base: Plan, plan: Plan, cancelled: Cancellation | None
    ) -> _Outcome | Plan:
        """What ``plan``'s answer means: the outcome, or the plan to send next.

        ``base`` is the movement's own plan; ``plan`` is it or a release of expired holds.
        """
        if cancelled is None and plan.records[0] is base.records[0]:
            return _Outcome(base.records[0], self.request.currency, replayed=False)
        if cancelled is None:  # a release-only plan went through: now the movement
            return base
        verdict = read_cancellation(self.ctx, cancelled)
        if plan.records[0] is not base.records[0]:
            return base  # a release-only plan lost a race: look again
        if verdict.kind == "stored":
            currency = self._payer_currency(cancelled.accounts)
            return self._stored_outcome(verdict.raw, currency)
        raise_unknown(verdict)
        if verdict.kind == "currency" and verdict.account is not None:
            self._check_currency(verdict.user_id, verdict.account, verdict.currency)
        if verdict.kind == "hold":  # an expired hold it released was released by another
            return base
        if verdict.kind == "unknown_check":  # the payee of a hold: one read tells which
            user = require_user(self.ctx, verdict.user_id)
            held = account_currency(self.ctx, user)
            if held == self.request.currency:
                raise Retry(CONTENTION)
            raise CurrencyMismatch(verdict.user_id, expected=self.request.currency, actual=held)
        if (
            verdict.kind == "account"
            and verdict.user
            and (verdict.user.hold_count or 0)
            >= (MAX_HOLDS if verdict.account and verdict.account.new_entries else math.inf)
        ):
            raise TooManyHolds(verdict.user_id, MAX_HOLDS)
        self._refuse_past_largest(verdict)
        if verdict.kind == "account" and verdict.raw is not None and verdict.user:
            # One account pays: the first refused (another's is its largest balance).
            releases = Releases(self.ctx, base, self.now, self.request_id)
            nxt = releases.after(plan, (verdict,))
            if isinstance(nxt, Plan):
                return nxt
            present = self.ctx.currencies.present
            return self._reject(
                present(spendable(self.ctx, verdict, self.now), self.request.currency),
                present(credit_limit(verdict.user), self.request.currency),
            )
        raise LedgerError(f"transaction cancelled for an unexpected reason: {verdict.kind}")

    def _send_transact(self) -> tuple[Transaction, TransactWriteError | None]:
        """Send a credit or debit, its items filled in from its shape's template.

        What :meth:`plan` would send, without building the plan (see
        :class:`~dynaledger.services.expressions.TransactTemplate`): the record, and
        None when applied, else the error.
        """
        ctx, request = self.ctx, self.request
        opening = ctx.opening_balance
        debit = request.type is EntryType.DEBIT
        bound = request.amount if debit else self._ceiling()
        # What the items' text and fixed values depend on besides the ledger's (its
        # opening balance and default currency, fixed with its ``wire``), as in ``_shape``.
        shape = (request.type, request.currency, opening >= bound if debit else opening <= bound)
        template = ctx.wire.transact_templates.get(shape)
        if template is None:
            plan = self.plan()
            template = expressions.TransactTemplate.of(
                ctx.wire,
                expressions.record_put(ctx.wire, plan.records[0]),
                expressions.account_update(
                    ctx.wire, plan.accounts[0], opening=opening,
                    default_currency=ctx.default_currency, now=self.now,
                ),
            )  # fmt: skip
            ctx.wire.transact_templates[shape] = template
        (record,) = self.records()
        stored = record.attribute_values
        put, update = template.fill(
            key=request.key,
            user_id=request.user_id,
            amount=format(request.amount, "f"),
            bound=format(bound, "f"),
            fingerprint=stored["fingerprint"],
            request_id=self.request_id,
            stamp=format_timestamp(self.now),
            metadata=stored.get("metadata"),
        )
        return record, send_items(ctx, put, update)

    def _refuse_past_largest(self, verdict: Verdict) -> None:
        """Raise when a credited account's condition failed: its only one past the currency
        is the largest balance (a debited account's is its floor)."""
        if verdict.kind != "account" or verdict.account is None or verdict.account.floor:
            return
        user_id = verdict.user_id
        largest = self.ctx.currencies.max_balance(self.request.currency)
        raise ValidationError(
            "amount",
            f"would take user {user_id!r}'s balance past the largest "
            f"{self.request.currency} balance, {largest:f}",
        )

    def _check_currency(self, user_id: str, change: AccountChange, held: str) -> None:
        request = self.request
        # The debited account (or a credit's only account) sets the currency.
        if not request.currency_given and change.sets_currency:
            raise _CurrencyLearned(held)
        raise CurrencyMismatch(user_id, expected=request.currency, actual=held)

    def _payer_currency(self, account_reasons: tuple[CancellationReason | None, ...]) -> str | None:
        """The first account's currency as this cancellation shows it, if it shows it.

        A condition that held checked the currency, so the account holds the
        request's; one that failed returned the account as it is.
        """
        if not account_reasons:
            return None
        reason = account_reasons[0]
        if reason is None:
            return self.request.currency
        if reason.code == CONDITION_FAILED and reason.raw_item is not None:
            return account_currency(self.ctx, load_user(self.ctx, reason.raw_item))
        return None

    def _stored_outcome(self, raw: dict[str, Any] | None, payer_currency: str | None) -> _Outcome:
        """What a key already in the table means for this call: replay, rejection or conflict.

        A record that names no currency (written by another client) is in its
        account's currency, ``payer_currency`` when the cancellation showed it.
        """
        request, ctx = self.request, self.ctx
        if raw is not None:
            stored = load_transaction(ctx, raw)
        else:  # a server that does not return old items on condition failure
            stored = read_transaction(ctx, request.key)
        currency = stored.currency or payer_currency or request.currency
        differences = request.differences(stored, currency)
        if differences:
            raise IdempotencyConflict(request.key, differences)
        if stored.status == STATUS_REJECTED:
            raise InsufficientFunds(
                stored.user_id,
                ctx.currencies.present(stored.rejected_balance or Decimal(0), currency),
                ctx.currencies.present(stored.amount, currency),
                currency,
                ctx.currencies.present(stored.rejected_limit or Decimal(0), currency),
            )
        # A record carrying this call's request id was written by an earlier attempt
        # whose reply was lost: that is this call's own success, not a replay.
        note_own_success(
            f"idempotency key {request.key!r}", own=stored.request_id == self.request_id
        )
        return _Outcome(stored, currency, replayed=stored.request_id != self.request_id)

    def _reject(self, balance: Decimal, limit: Decimal) -> _Outcome:
        """Record a refused debit against its key, so a replay is refused the same way."""
        request, ctx = self.request, self.ctx
        record = ctx.models.transaction(
            request.key,
            user_id=request.user_id,
            amount=request.amount,
            type=request.type.value,
            currency=request.currency,
            status=STATUS_REJECTED,
            kind=request.kind,
            fingerprint=request.fingerprint,
            request_id=self.request_id,
            counterparty_id=request.counterparty_id,
            transfer_id=request.key if request.kind == KIND_TRANSFER else None,
            timeout=request.timeout,
            rejected_at=self.now,
            rejected_balance=balance,
            rejected_limit=limit or None,
            metadata=dict(request.metadata) or None,  # what the key stands for, as applied
        )
        key_is_new = ctx.models.transaction.idempotency_key.does_not_exist()

        def attempt() -> _Outcome:
            try:
                with TransactWrite(connection=ctx.models.connection) as write:
                    write.save(record, condition=key_is_new, return_values=ALL_OLD)
            except TransactWriteError as error:
                reason = error.cancellation_reasons[0] if error.cancellation_reasons else None
                if reason is not None and reason.code == CONDITION_FAILED:
                    return self._stored_outcome(reason.raw_item, request.currency)
                if reason is not None and reason.code in CONTENTION_CODES:
                    raise Retry(CONTENTION) from error
                raise
            raise InsufficientFunds(
                request.user_id, balance, request.amount, request.currency, limit
            )

        return run(ctx, attempt)
