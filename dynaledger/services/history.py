"""History by account, and reconciliation of balances against it.

History pages are ordered by instant, not by the stored string. dynaledger
writes one fixed-width form (microseconds and ``Z``), whose strings sort in
time order; other clients write milliseconds, no fraction or ``+00:00``, and
those sort differently from the instant within one second. The index is read
newest string first, every entry is placed by its instant (then its key), and
a page is closed only once no entry still to be read could come before its
last one. A cursor carries the exact stored timestamp to resume from and the
position of the last entry shown, so each entry is listed exactly once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal, localcontext
from functools import partial
from typing import Any

import attrs
from pynamodb.expressions.operand import Path

from dynaledger import values
from dynaledger.errors import UnreadableRecord, ValidationError
from dynaledger.models.attributes import instant_key, instant_prefix
from dynaledger.models.transaction import (
    KIND_CAPTURE,
    KIND_EXPIRY,
    KIND_HOLD,
    KIND_LIMIT,
    KIND_POSTING,
    KIND_REFUND,
    KIND_RELEASE,
    KIND_VOID,
    Transaction,
)
from dynaledger.models.user import User
from dynaledger.money import EXACT, validate_identifier, validate_user_ids
from dynaledger.services._core import Context, run
from dynaledger.services.accounts import require_user
from dynaledger.services.records import (
    SortKey,
    account_currency,
    decode_legs,
    entry_order,
    hold_entries,
    load_transaction,
    load_user,
    problem_of,
    read_user_raw,
)
from dynaledger.values import EntryType

MAX_PAGE = 1000
#: The kinds of holds' entries, shown in history with their hold.
HOLD_KINDS = frozenset({KIND_HOLD, KIND_CAPTURE, KIND_RELEASE, KIND_VOID, KIND_EXPIRY})
#: The kinds history names: holds' entries, refunds, postings' legs, and ``limit`` (a
#: change of credit limit, not money).
SHOWN_KINDS = HOLD_KINDS | {KIND_LIMIT, KIND_REFUND, KIND_POSTING}
#: DynamoDB's bound on a key's value (bytes of UTF-8): a foreign record's key may be that long.
MAX_KEY_BYTES = 2048
#: Longer than any cursor history gives out: its head (tag, owner, timestamps: under 200
#: characters) and the last key's bytes in base64 (at most 2,732 characters).
MAX_CURSOR_LENGTH = 4096
_CURSOR_TAG = "h3"
#: The cursors given out before: the same fields, the user id in the clear, one JSON list.
_LEGACY_CURSOR_TAG = "h2"
_TIMESTAMP = "timestamp"


@attrs.frozen
class _Found:
    """An entry read from the index: the item as stored, its place in time, its timestamp.

    The item is read into a checked record only once it is on the page: an
    unreadable entry read ahead (to close the page) waits for its own page.
    """

    raw: dict[str, Any]
    order: SortKey
    stamp: str


def _owner(user_id: str) -> str:
    """What a cursor carries of its user: a digest, the same length for every id."""
    return hashlib.sha256(f"dynaledger history\x1f{user_id}".encode()).hexdigest()[:32]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


@attrs.frozen
class _Cursor:
    """Where a page ended: what to scan from, and the last entry already shown.

    Encoded as two base64 parts joined by ``.``: a JSON head (tag, the user's
    digest, the timestamp to resume from, the last entry's instant) and the last
    entry's key as UTF-8. Escaping no character, it stays under 2,048 characters
    for keys of 255 characters of any script, and under :data:`MAX_CURSOR_LENGTH`
    for the longest key DynamoDB stores.
    """

    user_id: str
    resume: str
    after: SortKey

    def encode(self) -> str:
        (second, fraction), key = self.after
        head = [_CURSOR_TAG, _owner(self.user_id), self.resume, second, fraction]
        return f"{_b64(json.dumps(head).encode())}.{_b64(key.encode())}"

    @classmethod
    def decode(cls, cursor: object, user_id: str) -> _Cursor:
        """Read a cursor this user's history gave out; anything else is a ValidationError."""
        invalid = ValidationError("cursor", "is not a cursor from this user's history")
        if not isinstance(cursor, str) or len(cursor) > MAX_CURSOR_LENGTH:
            raise invalid
        head_part, _, key_part = cursor.partition(".")
        try:
            fields = json.loads(base64.urlsafe_b64decode(head_part.encode()))
            if key_part:
                fields.append(base64.urlsafe_b64decode(key_part.encode()).decode())
        except (ValueError, binascii.Error, UnicodeError, RecursionError, AttributeError):
            raise invalid from None
        if not (
            isinstance(fields, list)
            and len(fields) == 6
            and all(isinstance(field, str) for field in fields)
        ):
            raise invalid
        tag, owner, resume, second, fraction, key = fields
        # The cursor only positions a read of this user's own index partition.
        if (tag, owner) not in ((_CURSOR_TAG, _owner(user_id)), (_LEGACY_CURSOR_TAG, user_id)):
            raise invalid
        try:
            size = len(key.encode())
        except UnicodeError:  # a lone surrogate: no stored key holds one
            raise invalid from None
        if (tag == _CURSOR_TAG) != bool(key_part) or not 0 < size <= MAX_KEY_BYTES:
            raise invalid
        if instant_key(resume) is None or instant_key(f"{second}.{fraction}Z") != (
            second,
            fraction,
        ):
            raise invalid
        return cls(user_id, resume, ((second, fraction), key))


def history(
    ctx: Context, user_id: str, *, limit: int = 50, cursor: str | None = None
) -> values.HistoryPage:
    """One page of an account's applied movements, newest first.

    One ``Query`` for a page of dynaledger's own records; one ``GetItem``
    more when the page is empty (to tell an unknown user from a quiet one) or
    holds records that name no currency (they are in the account's).

    Raises:
        ValidationError: ``limit`` is outside 1 to 1000, or ``cursor`` is not
            one this account's history gave out.
        UserNotFound: The first page is empty and no user has this id.
        UnreadableRecord: A record on the page breaks the ledger's rules.
    """
    user_id = validate_identifier(user_id, "user_id")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise ValidationError("limit", f"must be an int from 1 to {MAX_PAGE}, not {limit!r}")
    position = None if cursor is None else _Cursor.decode(cursor, user_id)
    found = sorted(_collect(ctx, user_id, position, limit), key=_order, reverse=True)
    shown = found[:limit]
    next_cursor = None
    if len(found) > limit:
        resume = max(item.stamp for item in found[limit:])
        next_cursor = _Cursor(user_id, resume, shown[-1].order).encode()
    records = [load_transaction(ctx, item.raw) for item in shown]
    currency = None
    if (not shown and position is None) or any(record.currency is None for record in records):
        currency = account_currency(ctx, require_user(ctx, user_id))
    items = tuple(entry(ctx, record, record.currency or currency or "") for record in records)
    return values.HistoryPage(items, next_cursor)


def _order(item: _Found) -> SortKey:
    return item.order


def _collect(ctx: Context, user_id: str, position: _Cursor | None, limit: int) -> list[_Found]:
    """Read the index newest string first until the page and the entry after it are settled.

    An entry read later can be newer than one read earlier only if its
    timestamp starts with the earlier one's digits (``...05.123Z`` is read
    before ``...05.123456Z``), so reading stops at the first entry past
    ``limit + 1`` that starts with none of them.
    """
    found: list[_Found] = []
    windows: set[str] = set()
    resume = None if position is None else position.resume
    for raw in _index_items(ctx, user_id, resume, page_size=limit + 2):
        stamp = _stored_timestamp(raw)
        if len(found) > limit and not any(stamp.startswith(window) for window in windows):
            break
        order = entry_order(ctx, raw)
        if position is not None and order >= position.after:
            continue  # shown on an earlier page
        found.append(_Found(raw, order, stamp))
        windows.add(instant_prefix(stamp))
    return found


def _stored_timestamp(raw: dict[str, Any]) -> str:
    value = raw.get(_TIMESTAMP, {})
    return str(value.get("S", "")) if isinstance(value, dict) else ""


def _index_items(
    ctx: Context, user_id: str, resume: str | None, *, page_size: int | None = None
) -> Iterator[dict[str, Any]]:
    """The user's items in the history index, newest string first, from ``resume`` down."""
    model = ctx.models.transaction
    condition = None if resume is None else Path(_TIMESTAMP) <= resume

    def page(start: dict[str, Any] | None) -> dict[str, Any]:
        return ctx.models.connection.query(
            model.Meta.table_name,
            user_id,
            range_key_condition=condition,
            index_name=model.user_index.Meta.index_name,
            scan_index_forward=False,
            limit=page_size,
            exclusive_start_key=start,
        )

    return _pages(ctx, page)


def _pages(
    ctx: Context, fetch: Callable[[dict[str, Any] | None], dict[str, Any]]
) -> Iterator[dict[str, Any]]:
    """Every raw item of a Query or Scan, page by page, each page fetched with retries."""
    start: dict[str, Any] | None = None
    while True:
        response = run(ctx, partial(fetch, start))
        yield from response.get("Items", [])
        start = response.get("LastEvaluatedKey")
        if not start:
            return


def entry(ctx: Context, record: Transaction, currency: str) -> values.HistoryEntry:
    """The history entry a stored, checked record stands for, in ``currency``."""
    assert record.timestamp is not None  # the index holds only records with one
    return values.HistoryEntry(
        idempotency_key=record.transfer_id or record.idempotency_key,
        user_id=record.user_id,
        amount=ctx.currencies.present(record.amount, currency),
        type=EntryType(record.type),
        currency=currency,
        timestamp=record.timestamp,
        counterparty_id=record.counterparty_id,
        kind=record.kind if record.kind in SHOWN_KINDS else None,
        hold_id=record.hold_id if record.kind in HOLD_KINDS else None,
        metadata=record.metadata or {},
        refund_of=record.refund_of if record.kind == KIND_REFUND else None,
        posted_with=_posted_with(record),
    )


def _posted_with(record: Transaction) -> tuple[str, ...]:
    """The other accounts of a posting (or of a posting's refund) this record is a leg of."""
    if not record.legs:
        return ()
    return tuple(leg.user_id for leg in decode_legs(record.legs) if leg.user_id != record.user_id)


def reconcile(ctx: Context, user_ids: Iterable[str] | None = None) -> values.ReconcileReport:
    """Check that each balance equals its opening balance plus credits minus debits.

    Reads every entry of every account checked; run it when the ledger is
    quiet, since the history index is eventually consistent. An item that
    cannot be read right (an account or any of its entries) is reported as a
    problem of that account, which then gets no verdict; the others are checked.

    Raises:
        UserNotFound: A named user does not exist.
        ValidationError: ``user_ids`` is not a str or an iterable of them.
    """
    problems: list[values.RecordProblem] = []
    users = _all_users(ctx, problems) if user_ids is None else _named(ctx, user_ids, problems)
    mismatches = []
    for user in users:
        mismatches.extend(_check(ctx, user, problems))
    unreadable_users = {p.user_id for p in problems if p.table == ctx.models.user.Meta.table_name}
    return values.ReconcileReport(
        checked=len({user.user_id for user in users} | unreadable_users),
        mismatches=tuple(mismatches),
        problems=tuple(problems),
    )


def _check(ctx: Context, user: User, problems: list[values.RecordProblem]) -> list[values.Mismatch]:
    """The account's mismatches; its unreadable entries go to ``problems``.

    Balance: opening + credits - debits, except captures' debits (a hold took
    that money when it was made). Held: holds - captures - releases, voids and
    expiries, against the stored ``held`` and the sum of the hold entries.
    """
    currency = account_currency(ctx, user)
    opening = ctx.opening_balance if user.opening_balance is None else user.opening_balance
    with localcontext(EXACT):
        expected, held, unreadable = _replay_entries(ctx, user, currency, opening, problems)
    if unreadable:
        return []
    present = ctx.currencies.present
    actual = opening if user.balance is None else user.balance
    found = []
    if expected != actual:
        found.append(
            values.Mismatch(user.user_id, present(expected, currency), present(actual, currency))
        )
    stored_held = user.held or Decimal(0)
    entries = Decimal(0)
    if stored_held or held:
        account = run(ctx, partial(read_user_raw, ctx, user.user_id))
        try:
            readable = hold_entries(ctx, account or {})
        except UnreadableRecord as error:  # a hold entry edited by hand: no verdict
            problems.append(problem_of(user.user_id, error))
            return []
        with localcontext(EXACT):
            entries = sum((e.remaining for e in readable), Decimal(0))
    for actual_held in (stored_held, entries):
        if actual_held != held:
            found.append(values.Mismatch(user.user_id, present(held, currency),
                                         present(actual_held, currency), field="held"))  # fmt: skip
            break
    return found


def _replay_entries(
    ctx: Context, user: User, currency: str, opening: Decimal, problems: list[values.RecordProblem]
) -> tuple[Decimal, Decimal, bool]:
    """Opening balance plus credits minus debits, what holds still hold, and whether any
    entry was unreadable."""
    expected, unreadable = opening, False
    held = Decimal(0)
    table = ctx.models.transaction.Meta.table_name
    for raw in _index_items(ctx, user.user_id, None):
        try:
            record = load_transaction(ctx, raw)
        except UnreadableRecord as error:
            problems.append(problem_of(user.user_id, error))
            unreadable = True
            continue
        if record.currency not in (None, currency):
            problem = f"currency {record.currency} on an account in {currency}"
            problems.append(
                values.RecordProblem(user.user_id, table, record.idempotency_key, problem)
            )
            unreadable = True
            continue
        if record.kind == KIND_LIMIT:  # a change of credit limit moves no money
            continue
        if record.kind == KIND_CAPTURE and record.type == EntryType.DEBIT:
            held -= record.amount
            continue
        expected += record.amount if record.type == EntryType.CREDIT else -record.amount
        if record.kind == KIND_HOLD:
            held += record.amount
        elif record.kind in (KIND_RELEASE, KIND_VOID, KIND_EXPIRY):
            held -= record.amount
    return expected, held, unreadable


def _named(
    ctx: Context, user_ids: Iterable[str], problems: list[values.RecordProblem]
) -> list[User]:
    users = []
    for user_id in validate_user_ids(user_ids):
        try:
            users.append(require_user(ctx, user_id))
        except UnreadableRecord as error:
            problems.append(problem_of(error.key, error))
    return users


def _all_users(ctx: Context, problems: list[values.RecordProblem]) -> list[User]:
    table = ctx.models.user.Meta.table_name
    users = []
    for raw in _pages(
        ctx, lambda start: ctx.models.connection.scan(
            table, exclusive_start_key=start, consistent_read=True  # type: ignore[arg-type]
        ),
    ):  # fmt: skip
        try:
            users.append(load_user(ctx, raw))
        except UnreadableRecord as error:
            problems.append(problem_of(error.key, error))
    return users
