"""Accounts: create a user, read a balance."""

from __future__ import annotations

from decimal import Decimal

from pynamodb.constants import ALL_OLD
from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from dynaledger import values
from dynaledger.errors import UnreadableRecord, UserAlreadyExists, UserNotFound
from dynaledger.models import User
from dynaledger.money import validate_identifier
from dynaledger.services import deployment
from dynaledger.services._core import (
    CONTENTION,
    CONTENTION_CODES,
    Context,
    Retry,
    note_own_success,
    run,
)
from dynaledger.services.records import account_currency, load_user, read_user


def get_user_balance(ctx: Context, user_id: str) -> values.Balance:
    """Read a balance with one strongly consistent read; writes nothing.

    Raises:
        UserNotFound: No user has this id.
    """
    return balance_of(ctx, require_user(ctx, validate_identifier(user_id, "user_id")))


def require_user(ctx: Context, user_id: str) -> User:
    """Read a user with a strongly consistent read.

    Raises:
        UserNotFound: No user has this id.
    """

    user = run(ctx, lambda: read_user(ctx, user_id))
    if user is None:
        raise UserNotFound(user_id)
    return user


def balance_of(ctx: Context, user: User) -> values.Balance:
    """The balance a stored user holds: its own, or the opening balance when it has none."""
    currency = account_currency(ctx, user)
    if user.balance is None:
        opening = ctx.currencies.present(ctx.opening_balance, currency)
        return values.Balance(user.user_id, opening, currency, True)
    return values.Balance(user.user_id, ctx.currencies.present(user.balance, currency), currency)


def create_user(
    ctx: Context, user_id: str, *, currency: str | None = None, balance: object = None
) -> values.User:
    """Create one account.

    With no ``balance`` the account starts on the ledger's opening balance,
    stored nowhere until its first movement.

    Raises:
        UserAlreadyExists: The id is taken; the existing user is untouched.
        ValidationError: An argument breaks its rule; nothing is written.
    """
    user_id = validate_identifier(user_id, "user_id")
    deployment.ensure(ctx)
    account_currency = (
        ctx.default_currency if currency is None else ctx.currencies.validate(currency)
    )
    starting: Decimal | None = (
        None if balance is None else ctx.currencies.parse_balance(balance, account_currency)
    )
    now = ctx.now()
    user = ctx.models.user(
        user_id,
        balance=starting,
        currency=None if currency is None else account_currency,
        opening_balance=starting,
        created_at=now,
        updated_at=now,
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
    return values.User(user_id, account_currency, starting)
