"""History by account, and reconciliation of balances against it."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator

from dynaledger import values
from dynaledger.errors import ValidationError
from dynaledger.models.attributes import format_timestamp
from dynaledger.models.transaction import Transaction
from dynaledger.models.user import User
from dynaledger.money import present, validate_identifier
from dynaledger.services._core import Context, run
from dynaledger.services.accounts import require_user
from dynaledger.values import EntryType

MAX_PAGE = 1000


def history(
    ctx: Context, user_id: str, *, limit: int = 50, cursor: str | None = None
) -> values.HistoryPage:
    """One page of an account's applied movements, newest first.

    Raises:
        ValidationError: ``limit`` is outside 1 to 1000, or ``cursor`` is not
            one this account's history gave out.
    """
    user_id = validate_identifier(user_id, "user_id")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise ValidationError("limit", f"must be an int from 1 to {MAX_PAGE}, not {limit!r}")
    start = None if cursor is None else _decode_cursor(cursor, user_id)

    def attempt() -> list[Transaction]:
        # One more than asked for tells whether another page exists.
        query = ctx.models.transaction.user_index.query(
            user_id,
            scan_index_forward=False,
            limit=limit + 1,
            page_size=limit + 1,
            last_evaluated_key=start,
        )
        return list(query)

    records = run(ctx, attempt)
    page = records[:limit]
    next_cursor = _encode_cursor(page[-1]) if len(records) > limit else None
    return values.HistoryPage(tuple(entry(ctx, record) for record in page), next_cursor)


def entry(ctx: Context, record: Transaction) -> values.HistoryEntry:
    """The history entry a stored record stands for."""
    currency = record.currency or ctx.default_currency
    assert record.timestamp is not None  # the index holds only records with one
    return values.HistoryEntry(
        idempotency_key=record.transfer_id or record.idempotency_key,
        user_id=record.user_id,
        amount=present(record.amount, currency),
        type=EntryType(record.type),
        currency=currency,
        timestamp=record.timestamp,
        counterparty_id=record.counterparty_id,
    )


def _encode_cursor(record: Transaction) -> str:
    assert record.timestamp is not None
    key = [record.user_id, format_timestamp(record.timestamp), record.idempotency_key]
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


def _decode_cursor(cursor: object, user_id: str) -> dict[str, dict[str, str]]:
    invalid = ValidationError("cursor", "is not a cursor from this user's history")
    if not isinstance(cursor, str):
        raise invalid
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, binascii.Error, UnicodeError):
        raise invalid from None
    if not (isinstance(key, list) and len(key) == 3 and all(isinstance(k, str) for k in key)):
        raise invalid
    owner, timestamp, idempotency_key = key
    if owner != user_id:
        raise invalid
    return {
        "userId": {"S": owner},
        "timestamp": {"S": timestamp},
        "idempotencyKey": {"S": idempotency_key},
    }


def entries(ctx: Context, user_id: str) -> Iterator[Transaction]:
    """Every applied record of an account, oldest first, across all pages."""
    return iter(run(ctx, lambda: list(ctx.models.transaction.user_index.query(user_id))))


def reconcile(ctx: Context, user_ids: Iterable[str] | None = None) -> values.ReconcileReport:
    """Check that each balance equals its opening balance plus credits minus debits.

    Reads every entry of every account checked; run it when the ledger is
    quiet, since the history index is eventually consistent.

    Raises:
        UserNotFound: A named user does not exist.
    """
    users = (
        _all_users(ctx)
        if user_ids is None
        else [require_user(ctx, validate_identifier(uid, "user_ids")) for uid in user_ids]
    )
    mismatches = []
    for user in users:
        opening = ctx.opening_balance if user.opening_balance is None else user.opening_balance
        expected = opening
        for record in entries(ctx, user.user_id):
            expected += record.amount if record.type == EntryType.CREDIT else -record.amount
        actual = opening if user.balance is None else user.balance
        if expected != actual:
            currency = user.currency or ctx.default_currency
            mismatches.append(
                values.Mismatch(
                    user.user_id, present(expected, currency), present(actual, currency)
                )
            )
    return values.ReconcileReport(checked=len(users), mismatches=tuple(mismatches))


def _all_users(ctx: Context) -> list[User]:
    return run(ctx, lambda: list(ctx.models.user.scan(consistent_read=True)))
