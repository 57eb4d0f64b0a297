"""Postings: several legs on several accounts, all applied in one transaction or none.

A posting compiles to one plan: per account (its legs merged into one net
credit or debit), a record keyed by the posting's key (the first account) or
``key + "\\x1fleg:<n>"`` (the others), each conditional on its key being new,
and the account's change (it exists, holds the currency and, when its net leg
is a debit, keeps at least that much). Legs must balance: credits equal
debits, so a posting only moves money between its accounts. DynamoDB allows
100 actions per transaction and each account costs two (its record and its
update); its refund costs the same and one more (the posting's ``refunded``
total), so a posting names at most :data:`MAX_ACCOUNTS` accounts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Any, Protocol

import attrs

from dynaledger import values
from dynaledger.errors import (
    CurrencyMismatch,
    IdempotencyConflict,
    InsufficientFunds,
    UserNotFound,
    ValidationError,
)
from dynaledger.models.transaction import (
    KIND_POSTING,
    KIND_TRANSACT,
    STATUS_APPLIED,
    STATUS_REJECTED,
    Transaction,
)
from dynaledger.money import EXACT, validate_identifier, validate_metadata
from dynaledger.services import deployment
from dynaledger.services._core import (
    CONTENTION,
    Context,
    Retry,
    new_request_id,
    note_own_success,
    run,
)
from dynaledger.services.accounts import require_user
from dynaledger.services.engine import (
    MAX_ACTIONS,
    AccountChange,
    Plan,
    Verdict,
    read_cancellation,
    send,
)
from dynaledger.services.expiry import Releases, releases_only, spendable
from dynaledger.services.records import (
    LEG_FIELD,
    Posted,
    account_currency,
    credit_limit,
    decode_legs,
    encode_legs,
    load_transaction,
    read_transaction,
)
from dynaledger.values import EntryType, Leg

#: Joins a posting's (or a refund's) key to the key of its n-th account's record.
LEG_PREFIX = "\x1fleg:"
#: Distinct accounts one posting may name: a record and an update each, and one more
#: action for its refund (the posting's total), within DynamoDB's 100.
MAX_ACCOUNTS = (MAX_ACTIONS - 1) // 2
#: Plans one posting may send: itself, and again with expired holds released (not
#: counting release-only plans that applied: each frees holds for good).
MAX_ROUNDS = 5


def leg_key(key: str, index: int) -> str:
    """The key of the record of a posting's (or refund's) ``index``-th account."""
    return key if index == 0 else f"{key}{LEG_PREFIX}{index}"


def credits(legs: Sequence[Posted], kind: str = "credit") -> Decimal:
    """The exact sum of the legs of ``kind``."""
    with localcontext(EXACT):
        return sum((leg.amount for leg in legs if leg.type == kind), Decimal(0))


def merge(legs: Sequence[Posted]) -> list[Posted]:
    """One net leg per account, in the order accounts first appear (net 0 is a credit of 0)."""
    net: dict[str, Decimal] = {}
    for leg in legs:
        signed = leg.amount if leg.type == "credit" else leg.amount.copy_negate()
        net[leg.user_id] = EXACT.add(net.get(leg.user_id, Decimal(0)), signed)
    return [
        Posted(user, amount.copy_abs(), "credit" if amount >= 0 else "debit")
        for user, amount in net.items()
    ]


@attrs.frozen
class PostRequest:
    """One posting as asked, normalized: what its idempotency key stands for."""

    key: str
    legs: tuple[Posted, ...]
    currency: str
    currency_given: bool = True
    metadata: tuple[tuple[str, str], ...] = ()

    @property
    def fingerprint(self) -> str:
        """A digest of the legs as given (the currency is stored beside it)."""
        lines = [
            LEG_FIELD.join((leg.type, format(leg.amount.normalize(), "f"), leg.user_id))
            for leg in self.legs
        ]
        return hashlib.sha256("\n".join(["v1", KIND_POSTING, *lines]).encode()).hexdigest()

    def differences(self, stored: Transaction) -> list[str]:
        """The request fields in which ``stored`` asked for something else."""
        if (stored.kind or KIND_TRANSACT) != KIND_POSTING:
            return ["kind"]
        checks = [
            ("legs", stored.fingerprint == self.fingerprint),
            ("currency", not self.currency_given or stored.currency == self.currency),
            ("metadata", (stored.metadata or {}) == dict(self.metadata)),
        ]
        return [name for name, same in checks if not same]


class _CurrencyLearned(Exception):
    """The caller named no currency, and the first account holds this one."""

    def __init__(self, currency: str) -> None:
        self.currency = currency
        super().__init__(currency)


def _given(legs: object) -> list[tuple[str, object, EntryType]]:
    """The legs as ``(user_id, raw amount, type)``, each checked but for its amount."""
    if isinstance(legs, (str, bytes)) or not isinstance(legs, Sequence):
        raise ValidationError("legs", "must be a sequence of Leg")
    given = []
    for index, leg in enumerate(legs):
        if not isinstance(leg, Leg):
            raise ValidationError(f"legs[{index}]", f"must be a Leg, not {leg!r}")
        user = validate_identifier(leg.user_id, f"legs[{index}].user_id")
        given.append((user, leg.amount, leg.type))
    accounts = len({user for user, _, _ in given})
    if accounts < 2:
        raise ValidationError("legs", "must name at least 2 accounts")
    if accounts > MAX_ACCOUNTS:
        raise ValidationError("legs", f"must name at most {MAX_ACCOUNTS} accounts, not {accounts}")
    return given


def _parsed(
    ctx: Context, given: list[tuple[str, object, EntryType]], currency: str | None
) -> tuple[Posted, ...]:
    legs = tuple(
        Posted(user, ctx.currencies.parse_amount(amount, currency, f"legs[{index}].amount"),
               kind.value)
        for index, (user, amount, kind) in enumerate(given)
    )  # fmt: skip
    paid, taken = credits(legs), credits(legs, "debit")
    if paid != taken:
        raise ValidationError("legs", f"must balance: credits {paid:f} and debits {taken:f} differ")
    return legs


def _request(
    ctx: Context, key: str, given: list[tuple[str, object, EntryType]], currency: str | None
) -> PostRequest:
    """The request, its amounts checked against the currency (read from the first account
    only when none is named and an amount does not fit the default currency)."""
    money = ctx.currencies
    if currency is not None:
        held = money.validate(currency)
        return PostRequest(key, _parsed(ctx, given, held), held)
    loose = _parsed(ctx, given, None)
    if all(money.fits(leg.amount, ctx.default_currency) for leg in loose):
        return PostRequest(key, _parsed(ctx, given, ctx.default_currency), ctx.default_currency,
                           currency_given=False)  # fmt: skip
    held = account_currency(ctx, require_user(ctx, given[0][0]))
    return PostRequest(key, _parsed(ctx, given, held), held)


def _plan(ctx: Context, request: PostRequest, now: datetime, request_id: str) -> Plan:
    merged = merge(request.legs)
    encoded = encode_legs(merged)
    model = ctx.models.transaction
    records, accounts = [], []
    for index, leg in enumerate(merged):
        records.append(model(
            leg_key(request.key, index), user_id=leg.user_id, amount=leg.amount, type=leg.type,
            currency=request.currency, status=STATUS_APPLIED, kind=KIND_POSTING,
            fingerprint=request.fingerprint, request_id=request_id, timestamp=now,
            transfer_id=request.key, legs=encoded, metadata=dict(request.metadata) or None,
        ))  # fmt: skip
        debit = leg.type == "debit"
        accounts.append(AccountChange(
            leg.user_id, request.currency,
            balance_delta=leg.amount.copy_negate() if debit else leg.amount,
            floor=leg.amount if debit else None, sets_currency=index == 0, role=leg.type,
            ceiling=None if debit else ceiling(ctx, request.currency, leg.amount),
        ))  # fmt: skip
    return Plan(records=tuple(records), accounts=tuple(accounts))


def ceiling(ctx: Context, currency: str, amount: Decimal) -> Decimal:
    """The largest balance an account credited ``amount`` may hold before the credit."""
    with localcontext(EXACT):
        return ctx.currencies.max_balance(currency) - amount


def refusal_figures(
    ctx: Context, verdict: Verdict, currency: str, now: datetime, field: str
) -> tuple[Decimal, Decimal]:
    """The spendable balance and credit limit of the account a verdict refused for funds.

    Raises:
        ValidationError: The account refused was credited: its only condition past the
            currency is the largest balance (on ``field``).
    """
    assert verdict.user is not None
    assert verdict.raw is not None
    assert verdict.account is not None
    if not verdict.account.floor:
        largest = ctx.currencies.max_balance(currency)
        raise ValidationError(field, f"would take user {verdict.user_id!r}'s balance past the "
                                     f"largest {currency} balance, {largest:f}")  # fmt: skip
    present = ctx.currencies.present
    return (
        present(spendable(ctx, verdict, now), currency),
        present(credit_limit(verdict.user), currency),
    )


class KeyedRequest(Protocol):
    """A request that knows its key and how a stored record differs from it."""

    @property
    def key(self) -> str: ...

    def differences(self, stored: Transaction) -> list[str]: ...


def replay(
    ctx: Context, request: KeyedRequest, raw: dict[str, Any] | None, request_id: str
) -> Transaction:
    """The stored outcome of a key already used: its record, its refusal, or a conflict."""
    stored = load_transaction(ctx, raw) if raw is not None else read_transaction(ctx, request.key)
    differences = request.differences(stored)
    if differences:
        raise IdempotencyConflict(request.key, differences)
    if stored.status == STATUS_REJECTED:
        raise refusal(ctx, stored)
    note_own_success(f"idempotency key {request.key!r}", own=stored.request_id == request_id)
    return stored


def refusal(ctx: Context, record: Transaction) -> InsufficientFunds:
    """The error a recorded refusal (of a posting or a refund) stands for."""
    currency = record.currency or ctx.default_currency
    present = ctx.currencies.present
    return InsufficientFunds(record.user_id, present(record.rejected_balance or Decimal(0),
                             currency), present(record.amount, currency), currency,
                             present(record.rejected_limit or Decimal(0), currency))  # fmt: skip


def _refuse(ctx: Context, base: Plan, index: int, balance: Decimal, limit: Decimal) -> Plan:
    """The final refusal: the posting's first record, rejected, naming the account and its leg."""
    first, change = base.records[0], base.accounts[index]
    record = ctx.models.transaction(
        first.idempotency_key, user_id=change.user_id, amount=change.balance_delta.copy_abs(),
        type="debit", currency=first.currency, status=STATUS_REJECTED, kind=KIND_POSTING,
        fingerprint=first.fingerprint, request_id=first.request_id, transfer_id=first.transfer_id,
        legs=first.legs, rejected_at=first.timestamp, rejected_balance=balance,
        rejected_limit=limit or None, metadata=first.metadata,
    )  # fmt: skip
    return Plan(records=(record,))


def _apply(ctx: Context, request: PostRequest, now: datetime, request_id: str
           ) -> tuple[Transaction, bool]:  # fmt: skip
    def attempt() -> tuple[Transaction, bool]:
        base = _plan(ctx, request, now, request_id)
        plan, releases = base, Releases(ctx, base, now, request_id)
        rounds = 0
        while rounds < MAX_ROUNDS:
            rounds += 1
            cancelled = send(ctx, plan, now)
            released_only = releases_only(plan, base)
            if cancelled is None:
                if plan.records[0].status == STATUS_REJECTED:
                    raise refusal(ctx, plan.records[0])
                if released_only:  # expired holds released: now the posting itself
                    rounds -= 1  # progress that stays, not a round
                    plan = releases.next_plan()
                    continue
                return base.records[0], False
            if released_only:  # another call released them first: look again
                plan, releases = base, Releases(ctx, base, now, request_id)
                continue
            verdict = read_cancellation(ctx, cancelled)
            if verdict.kind == "stored":
                stored = replay(ctx, request, verdict.raw, request_id)
                return stored, stored.request_id != request_id
            if verdict.kind == "unknown_user":
                raise UserNotFound(verdict.user_id)
            if verdict.kind == "currency":
                first = verdict.account is not None and verdict.account.sets_currency
                if not request.currency_given and first:
                    raise _CurrencyLearned(verdict.currency)
                raise CurrencyMismatch(verdict.user_id, expected=request.currency,
                                       actual=verdict.currency)  # fmt: skip
            if verdict.kind == "account":
                after = releases.after(plan, verdict.failures)
                if isinstance(after, Plan):
                    plan = after
                    continue
                index = plan.accounts.index(after.account)
                balance, limit = refusal_figures(ctx, after, request.currency, now, "legs")
                plan = _refuse(ctx, base, index, balance, limit)
                continue
            raise Retry(CONTENTION)
        raise Retry(CONTENTION)

    return run(ctx, attempt)


def post(
    ctx: Context,
    *,
    idempotency_key: str,
    legs: Sequence[Leg],
    currency: str | None = None,
    metadata: object = None,
) -> values.PostResult:
    """Apply every leg together, or none, exactly once per idempotency key."""
    key = validate_identifier(idempotency_key, "idempotency_key")
    given = _given(legs)
    extra = tuple(validate_metadata(metadata).items())
    request = attrs.evolve(_request(ctx, key, given, currency), metadata=extra)
    deployment.ensure(ctx)
    now, request_id = ctx.now(), new_request_id()
    try:
        record, replayed = _apply(ctx, request, now, request_id)
    except _CurrencyLearned as learned:
        # No currency named and the accounts hold another: check the amounts in it, go again.
        request = attrs.evolve(request, legs=_parsed(ctx, given, learned.currency),
                               currency=learned.currency, currency_given=True)  # fmt: skip
        record, replayed = _apply(ctx, request, now, request_id)
    ctx.known.put(record)  # a refund of the posting then skips reading it
    money = record.currency or ctx.default_currency
    merged = decode_legs(record.legs or "")
    present = ctx.currencies.present
    assert record.timestamp is not None  # an applied record
    return values.PostResult(
        idempotency_key=key,
        legs=tuple(Leg(leg.user_id, present(leg.amount, money), leg.type) for leg in merged),
        amount=present(credits(merged), money),
        currency=money,
        timestamp=record.timestamp,
        replayed=replayed,
        metadata=record.metadata or {},
    )
