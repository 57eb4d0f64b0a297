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

from dynaledger.errors import UserAlreadyExists, ValidationError
from dynaledger.models.user import User
from dynaledger.money import parse_balance, validate_currency
from dynaledger.services._core import Context, run
from dynaledger.services.accounts import create_user
from dynaledger.values import SeedReport

#: DynamoDB's limits: BatchGetItem reads 100 keys, BatchWriteItem writes 25 items.
GET_BATCH = 100


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
    """Write ``count`` synthetic users in batches: look up which exist, batch-write the rest."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValidationError("count", f"must be a positive int, not {count!r}")
    account_currency = ctx.default_currency if currency is None else validate_currency(currency)
    starting = parse_balance(balance, account_currency)
    model = ctx.models.user
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
    for start in range(0, count, GET_BATCH):
        batch = ids[start : start + GET_BATCH]
        fresh = run(ctx, partial(_missing, model, batch))
        run(ctx, partial(_write, model, fresh, fields))
        created += len(fresh)
        skipped += len(batch) - len(fresh)
        if progress is not None:
            progress(start + len(batch), count)
    return SeedReport(created=created, skipped=skipped)


def _missing(model: type[User], user_ids: list[str]) -> list[str]:
    """The ids of ``user_ids`` that no user has yet (one BatchGetItem of up to 100 keys)."""
    existing = {user.user_id for user in model.batch_get(user_ids)}
    return [user_id for user_id in user_ids if user_id not in existing]


def _write(model: type[User], user_ids: list[str], fields: dict[str, Any]) -> None:
    """Write new users in BatchWriteItem requests of 25."""
    with model.batch_write() as writer:
        for user_id in user_ids:
            writer.save(model(user_id, **fields))
