"""Test users: a small fixed set, and synthetic ones in bulk for load work.

Both are idempotent: a user that exists already is left untouched and counted
as skipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from importlib import resources
from typing import Any

import attrs
from pynamodb.constants import ALL_OLD
from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from dynaledger.errors import UnreadableRecord, UserAlreadyExists, ValidationError
from dynaledger.services import deployment
from dynaledger.services._core import CONTENTION, CONTENTION_CODES, Context, Retry, run
from dynaledger.services.accounts import create_user
from dynaledger.services.records import load_user
from dynaledger.values import SeedReport

#: Users per request: DynamoDB's limit of 100 actions per transaction.
BATCH = 100


@attrs.frozen
class SeedUser:
    """One user of a seed file."""

    user_id: str
    balance: str | None = None
    currency: str | None = None


def load_seed_users() -> list[SeedUser]:
    """The users in ``seeds/users.json``."""
    text = resources.files(__package__).joinpath("users.json").read_text(encoding="utf-8")
    rows: list[dict[str, Any]] = json.loads(text)
    return [SeedUser(r["userId"], r.get("balance"), r.get("currency")) for r in rows]


def seed(ctx: Context, users: Sequence[SeedUser] | None = None) -> SeedReport:
    """Create the seed users that do not exist yet."""
    created = skipped = 0
    for user in load_seed_users() if users is None else users:
        try:
            create_user(ctx, user.user_id, currency=user.currency, balance=user.balance)
        except UserAlreadyExists:
            skipped += 1
        else:
            created += 1
    return SeedReport(created=created, skipped=skipped)


def synthetic_ids(count: int, prefix: str = "synthetic-") -> Iterator[str]:
    """The ids ``seed --generate`` writes: the same ones every time, so reruns skip them."""
    return (f"{prefix}{n:07d}" for n in range(1, count + 1))


def generate(
    ctx: Context,
    count: int,
    *,
    balance: str = "100.00",
    currency: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SeedReport:
    """Write ``count`` synthetic users, 100 per request, never touching one that exists.

    Each user is a put conditional on its id being new, sent as one
    ``TransactWriteItems`` of up to 100. When some ids exist (made by an
    earlier run, or created and funded by anyone a moment ago), DynamoDB
    cancels the request and names them; they are skipped and the rest sent
    again. Nothing is ever overwritten, so no balance can be reset.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValidationError("count", f"must be a positive int, not {count!r}")
    if progress is not None and not callable(progress):
        raise ValidationError("progress", f"must be a callable or None, not {progress!r}")
    deployment.ensure(ctx)
    account_currency = (
        ctx.default_currency if currency is None else ctx.currencies.validate(currency)
    )
    starting = ctx.currencies.parse_balance(balance, account_currency)
    ids = list(synthetic_ids(count))
    created = skipped = 0
    now = ctx.now()
    fields: dict[str, Any] = {
        "balance": starting,
        "currency": currency and account_currency,
        "opening_balance": starting,
        "created_at": now,
        "updated_at": now,
    }
    for start in range(0, count, BATCH):
        batch = ids[start : start + BATCH]
        made, existing = _create_new(ctx, batch, fields)
        created += made
        skipped += existing
        if progress is not None:
            progress(start + len(batch), count)
    return SeedReport(created=created, skipped=skipped)


def _create_new(ctx: Context, user_ids: list[str], fields: dict[str, Any]) -> tuple[int, int]:
    """Create those of ``user_ids`` that do not exist: (how many were created, how many existed)."""
    pending, created, skipped = list(user_ids), 0, 0
    while pending:
        existing = run(ctx, partial(_put_new, ctx, pending, fields))
        if not existing:
            return created + len(pending), skipped
        ours = sum(existing.values())
        created, skipped = created + ours, skipped + len(existing) - ours
        pending = [user_id for user_id in pending if user_id not in existing]
    return created, skipped


def _put_new(ctx: Context, user_ids: list[str], fields: dict[str, Any]) -> dict[str, bool]:
    """One conditional put per user in one transaction.

    Returns:
        Nothing when all were written; otherwise the ids that exist, each
        with True when it is this run's own user (an earlier attempt landed
        and its reply was lost) and False when it is someone else's.
    """
    model = ctx.models.user
    try:
        with TransactWrite(connection=ctx.models.connection) as write:
            for user_id in user_ids:
                write.save(
                    model(user_id, **fields),
                    condition=model.user_id.does_not_exist(),
                    return_values=ALL_OLD,
                )
    except TransactWriteError as error:
        reasons = error.cancellation_reasons
        if any(reason is not None and reason.code in CONTENTION_CODES for reason in reasons):
            raise Retry(CONTENTION) from error
        existing = {
            user_id: _is_ours(ctx, reason.raw_item, fields)
            for user_id, reason in zip(user_ids, reasons, strict=False)
            if reason is not None and reason.code == "ConditionalCheckFailed"
        }
        if not existing:
            raise
        return existing
    return {}


def _is_ours(ctx: Context, raw: dict[str, Any] | None, fields: dict[str, Any]) -> bool:
    if raw is None:
        return False
    try:
        stored = load_user(ctx, raw)
    except UnreadableRecord:
        return False
    return bool(stored.created_at == fields["created_at"] and stored.balance == fields["balance"])
