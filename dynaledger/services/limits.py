"""Credit limits: how far below zero an account may go, stored on the account.

An account with a ``creditLimit`` also stores ``available`` (its balance plus
its limit), which every update that changes the balance keeps in step, so the
floor of a debit, transfer or hold stays one comparison in the same
conditional write (``available >= amount``, see the engine). An account with
no ``creditLimit`` has limit 0 and keeps the condition ``balance >= amount``.

Setting a limit is one ``TransactWriteItems``: the record of the change (keyed,
conditional on its key being new; a ``limit`` entry in history, not money) and
the update of the account (it must exist and hold the currency), which sets
``creditLimit`` and derives ``available`` from the balance in the same write.
A limit below the current debt is allowed: it only blocks further debits.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal
from functools import partial

import attrs

from dynaledger import values
from dynaledger.errors import (
    IdempotencyConflict,
    LedgerError,
    UserNotFound,
    ValidationError,
)
from dynaledger.models.transaction import KIND_LIMIT, STATUS_APPLIED, Transaction
from dynaledger.money import EXACT, validate_identifier
from dynaledger.services import deployment
from dynaledger.services._core import Context, new_request_id, note_own_success, run
from dynaledger.services.accounts import parse_limit, require_user
from dynaledger.services.engine import AccountChange, Plan, read_cancellation, send
from dynaledger.services.records import (
    account_currency,
    applied_at,
    load_transaction,
    read_transaction,
)


@attrs.frozen
class _LimitRequest:
    """One change of limit as asked for: what its idempotency key stands for."""

    key: str
    user_id: str
    limit: Decimal
    currency: str

    @property
    def fingerprint(self) -> str:
        parts = ["v1", KIND_LIMIT, self.user_id, format(self.limit.normalize(), "f")]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()

    def differences(self, stored: Transaction) -> list[str]:
        """The fields, by their API names, in which ``stored`` asked for something else."""
        checks = [
            ("kind", stored.kind == KIND_LIMIT),
            ("user_id", stored.user_id == self.user_id),
            ("limit", stored.amount == self.limit),
        ]
        return [name for name, same in checks if not same]


def set_credit_limit(
    ctx: Context, *, idempotency_key: str, user_id: str, limit: object
) -> values.CreditLimitResult:
    """Set how far below zero ``user_id`` may go, exactly once per idempotency key.

    One request when the limit fits the default currency's decimals (a second,
    a read, only when it needs the account's own currency to be judged).

    Raises:
        ValidationError: A bad key, user id or limit (negative, too many decimals
            for the account's currency, above the largest amount); nothing is written.
        UserNotFound: No user has this id.
        IdempotencyConflict: The key was used for another request; names the fields.
    """
    key = validate_identifier(idempotency_key, "idempotency_key")
    user = validate_identifier(user_id, "user_id")
    deployment.ensure(ctx)
    try:
        value, currency = (
            parse_limit(ctx, limit, ctx.default_currency, "limit"),
            ctx.default_currency,
        )
    except ValidationError:
        # Wrong in every currency (not a number, negative, too large): no read.
        ctx.currencies.parse_amount(limit, None, "limit")
        # More decimals than the default currency allows: judged by the account's own.
        currency = account_currency(ctx, require_user(ctx, user))
        value = parse_limit(ctx, limit, currency, "limit")
    request = _LimitRequest(key, user, value, currency)
    request_id, now = new_request_id(), ctx.now()
    while True:
        outcome = run(ctx, partial(_attempt, ctx, request, request_id, now))
        if isinstance(outcome, str):  # the account holds another currency: judge by it
            request = attrs.evolve(
                request, currency=outcome, limit=parse_limit(ctx, limit, outcome, "limit")
            )
            continue
        record, replayed = outcome
        currency = record.currency or request.currency
        present = ctx.currencies.present
        return values.CreditLimitResult(
            idempotency_key=record.idempotency_key,
            user_id=record.user_id,
            credit_limit=present(record.amount, currency),
            currency=currency,
            timestamp=applied_at(record),
            replayed=replayed,
        )


def _attempt(
    ctx: Context, request: _LimitRequest, request_id: str, now: datetime
) -> tuple[Transaction, bool] | str:
    """Send the change once: the record and the account, or the currency the account holds."""
    record = ctx.models.transaction(
        request.key,
        user_id=request.user_id,
        amount=request.limit,
        type="credit",
        currency=request.currency,
        status=STATUS_APPLIED,
        kind=KIND_LIMIT,
        fingerprint=request.fingerprint,
        request_id=request_id,
        timestamp=now,
    )
    largest = ctx.currencies.max_balance(request.currency)
    account = AccountChange(
        request.user_id, request.currency, credit_limit=request.limit, touch_balance=False,
        sets_currency=True, role="limit", ceiling=EXACT.subtract(largest, request.limit),
    )  # fmt: skip
    cancelled = send(ctx, Plan(records=(record,), accounts=(account,)), now)
    if cancelled is None:
        return record, False
    verdict = read_cancellation(ctx, cancelled)  # contention raises Retry
    if verdict.kind == "stored":
        stored = (
            load_transaction(ctx, verdict.raw)
            if verdict.raw is not None
            else read_transaction(ctx, request.key)
        )
        differences = request.differences(stored)
        if differences:
            raise IdempotencyConflict(request.key, differences)
        own = stored.request_id == request_id
        note_own_success(f"idempotency key {request.key!r}", own=own)
        return stored, not own
    if verdict.kind == "unknown_user":
        raise UserNotFound(verdict.user_id)
    if verdict.kind == "currency" and verdict.currency != request.currency:
        return verdict.currency
    if verdict.kind == "account" and verdict.user is not None:  # available would not fit
        current = verdict.user.balance
        balance = ctx.opening_balance if current is None else current
        raise ValidationError("limit", f"user {request.user_id!r}'s balance {balance} plus "
                                       f"{request.limit} would pass the largest "
                                       f"{request.currency} balance, {largest}")  # fmt: skip
    raise LedgerError(
        f"a change of credit limit cancelled for an unexpected reason: {verdict.kind}"
    )
