"""Accounts: create a user, read a balance."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, localcontext

from pynamodb.constants import ALL_OLD
from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from dynaledger import values
from dynaledger.errors import UnreadableRecord, UserAlreadyExists, UserNotFound, ValidationError
from dynaledger.models import User
from dynaledger.money import EXACT, validate_identifier
from dynaledger.services import deployment
from dynaledger.services._core import (
    CONTENTION,
    CONTENTION_CODES,
    Context,
    Retry,
    note_own_success,
    run,
)
from dynaledger.services.records import (
    HoldEntry,
    account_currency,
    credit_limit,
    hold_entries,
    load_user,
    read_user,
    read_user_raw,
)


def get_user_balance(ctx: Context, user_id: str) -> values.Balance:
    """Read a balance with one strongly consistent read; writes nothing.

    Raises:
        UserNotFound: No user has this id.
    """
    user_id = validate_identifier(user_id, "user_id")
    now = ctx.now()
    raw = run(ctx, lambda: read_user_raw(ctx, user_id))
    if raw is None:
        raise UserNotFound(user_id)
    return balance_of(ctx, load_user(ctx, raw), hold_entries(ctx, raw), now)


def require_user(ctx: Context, user_id: str) -> User:
    """Read a user with a strongly consistent read.

    Raises:
        UserNotFound: No user has this id.
    """

    user = run(ctx, lambda: read_user(ctx, user_id))
    if user is None:
        raise UserNotFound(user_id)
    return user


def balance_of(
    ctx: Context,
    user: User,
    entries: list[HoldEntry] | None = None,
    now: datetime | None = None,
) -> values.Balance:
    """The balance a stored user holds: its own, or the opening balance when it has none.

    With its hold ``entries``: the remainders of holds expired at ``now`` are
    spendable again, the others are ``held``.
    """
    currency = account_currency(ctx, user)
    present = ctx.currencies.present
    stored: Decimal | None = user.attribute_values.get("balance")
    expired = held = Decimal(0)
    if entries:
        with localcontext(EXACT):
            expired = sum((e.remaining for e in entries if now and e.expired(now)), expired)
            held = sum((e.remaining for e in entries if not (now and e.expired(now))), held)
    spendable = EXACT.add(ctx.opening_balance if stored is None else stored, expired)
    return values.Balance(
        user.attribute_values["user_id"], present(spendable, currency), currency, stored is None,
        present(held, currency), present(credit_limit(user), currency),
    )  # fmt: skip


def create_user(
    ctx: Context,
    user_id: str,
    *,
    currency: str | None = None,
    balance: object = None,
    credit_limit: object = 0,
) -> values.User:
    """Create one account.

    With no ``balance`` the account starts on the ledger's opening balance,
    stored nowhere until its first movement. A ``credit_limit`` above 0 is
    stored with ``available`` (the balance plus the limit); 0 stores nothing.

    Raises:
        UserAlreadyExists: The id is taken; the existing user is untouched.
        ValidationError: An argument breaks its rule; nothing is written.
    """
    user_id = validate_identifier(user_id, "user_id")
    deployment.ensure(ctx)
    account_currency = (
        ctx.default_currency if currency is None else ctx.currencies.validate(currency)
    )
    if balance is None:
        _check_opening_fits(ctx, account_currency)
        starting = None
    else:
        starting = ctx.currencies.parse_balance(balance, account_currency)
    limit = parse_limit(ctx, credit_limit, account_currency)
    now = ctx.now()
    with localcontext(EXACT):
        available = (ctx.opening_balance if starting is None else starting) + limit
    largest = ctx.currencies.max_balance(account_currency)
    if available > largest:  # ``available`` is a stored number too: 38 digits at most
        raise ValidationError("credit_limit", f"the balance plus {limit} would pass the largest "
                                              f"{account_currency} balance, {largest}")  # fmt: skip
    user = ctx.models.user(
        user_id,
        balance=starting,
        currency=None if currency is None else account_currency,
        opening_balance=starting,
        created_at=now,
        updated_at=now,
        credit_limit=limit or None,
        available=available if limit else None,
    )

    def attempt() -> bool:
        try:
            with TransactWrite(connection=ctx.models.connection) as write:
                write.save(
                    user, condition=ctx.models.user.user_id.does_not_exist(), return_values=ALL_OLD
                )
        except TransactWriteError as error:
            reason = error.cancellation_reasons[0] if error.cancellation_reasons else None
            if reason is not None and reason.code in CONTENTION_CODES:
                raise Retry(CONTENTION) from error
            if reason is None or reason.code != "ConditionalCheckFailed":
                raise
            if reason.raw_item is None:
                return False
            # Our own earlier attempt may have landed before its reply was lost.
            try:
                stored = load_user(ctx, reason.raw_item)
            except UnreadableRecord:
                return False
            own = stored.created_at == now and stored.balance == starting
            note_own_success(f"user {user_id!r}", own=own)
            return own
        return True

    if not run(ctx, attempt):
        raise UserAlreadyExists(user_id)
    return values.User(
        user_id, account_currency, starting, ctx.currencies.present(limit, account_currency)
    )


def _check_opening_fits(ctx: Context, currency: str) -> None:
    """An account created on the opening balance holds it in its own currency: it must be
    a balance of that currency (its decimals, at most its largest balance).

    Raises:
        ValidationError: On ``balance``, which must then be given.
    """
    try:
        ctx.currencies.parse_balance(ctx.opening_balance, currency, "balance")
    except ValidationError as error:
        raise ValidationError(
            "balance",
            f"must be given for an account in {currency}: the opening balance {error.rule}",
        ) from None


def parse_limit(ctx: Context, value: object, currency: str, field: str = "credit_limit") -> Decimal:
    """A credit limit in ``currency``: 0 or more, its decimals, at most the largest amount.

    Raises:
        ValidationError: The value breaks one of those rules.
    """
    limit = ctx.currencies.parse_balance(value, currency, field)
    largest = ctx.currencies.max_amount(currency)
    if limit > largest:
        raise ValidationError(field, f"must be at most {largest}, got {limit}")
    return limit
