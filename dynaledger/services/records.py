"""Stored items, read defensively: other clients write these tables too.

A service sharing the tables, the AWS CLI or a hand edit can store anything:
an ``amount`` as a string, ``type: "CREDIT"``, a currency in lower case, a
timestamp in another zone. Each item is read into its model and checked
against the rules the ledger counts on; one that breaks them raises
:class:`~dynaledger.errors.UnreadableRecord` naming the table, the key and the
rule, never a PynamoDB or ``KeyError`` traceback, and is never miscounted.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, TypeVar

import attrs
from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.constants import GET_ITEM, NULL
from pynamodb.exceptions import AttributeDeserializationError, GetError
from pynamodb.models import Model

from dynaledger import values
from dynaledger.errors import UnreadableRecord, ValidationError
from dynaledger.models import load
from dynaledger.models.attributes import instant_key, parse_timestamp
from dynaledger.models.transaction import (
    KIND_LIMIT,
    KIND_POSTING,
    KIND_REFUND,
    KINDS,
    STATUS_APPLIED,
    STATUS_REJECTED,
    Transaction,
)
from dynaledger.models.user import HOLD_PREFIX, User
from dynaledger.services._core import Context

_M = TypeVar("_M", bound=Model)

ENTRY_TYPES = frozenset({"credit", "debit"})
_TIMESTAMP = "timestamp"
#: What an applied entry's sort key is: the instant, then the stored key.
SortKey = tuple[tuple[str, str], str]


def _instantiate(model: type[_M], raw: dict[str, Any], key: str) -> _M:
    try:
        return load(model, raw)
    except AttributeDeserializationError as error:
        # PynamoDB names the type it expected ("from type: N"); say what is stored too.
        raise UnreadableRecord(
            model.Meta.table_name, key, _wrong_type(model, raw, error)
        ) from error
    except (ValueError, TypeError) as error:
        raise UnreadableRecord(model.Meta.table_name, key, _named(model, raw, error)) from error


def _named(model: type[Model], raw: dict[str, Any], error: Exception) -> str:
    """``error``'s message, led by the attribute whose value it is about (an attribute's
    own error, such as a timestamp's, names the value but not the attribute; a number's
    or a map's names it already)."""
    for attribute in model.get_attributes().values():
        typed = raw.get(attribute.attr_name)
        if not isinstance(typed, dict) or not typed or NULL in typed:
            continue
        try:
            attribute.deserialize(attribute.get_value(typed))
        except (ValueError, TypeError):
            named, message = f"{attribute.attr_name}: ", str(error)
            return message if message.startswith(named) else named + message
    return str(error)


def _wrong_type(model: type[Model], raw: dict[str, Any], error: Exception) -> str:
    for attribute in model.get_attributes().values():
        typed = raw.get(attribute.attr_name)
        if isinstance(typed, dict) and typed and not typed.keys() & {attribute.attr_type, NULL}:
            stored = ", ".join(sorted(typed))
            return f"{attribute.attr_name} is stored as {stored}, not {attribute.attr_type}"
    return str(error)


def problem_of(user_id: str, error: UnreadableRecord) -> values.RecordProblem:
    """``error`` as a problem of account ``user_id`` in a report (reconcile, expiry)."""
    return values.RecordProblem(user_id, error.table_name, error.key, error.problem)


def _raw_key(raw: dict[str, Any], attribute: str) -> str:
    value = raw.get(attribute, {})
    return str(value.get("S", value)) if isinstance(value, dict) else str(value)


def load_user(ctx: Context, raw: dict[str, Any]) -> User:
    """A stored account, checked: no attribute the ledger's conditions read stored as
    NULL, a known currency if any, a finite ``balance`` within the
    currency's largest if any, and a credit limit (if any) that is not negative and has the
    ``available`` every debit's condition reads.

    Raises:
        UnreadableRecord: The item breaks one of those rules.
    """
    model = ctx.models.user
    key = _raw_key(raw, ctx.wire.user_key)
    for name in ctx.wire.user_names.values():
        # DynamoDB's conditions see a NULL as a value that is not a number: read as
        # absent, it would be the opening balance to reads and refused by every write.
        if NULL in raw.get(name, ()):
            raise UnreadableRecord(model.Meta.table_name, key, f"{name} is stored as NULL")
    user = _instantiate(model, raw, key)
    problem = _account_problem(ctx, user.attribute_values)  # as load wrote them
    if problem is not None:
        raise UnreadableRecord(model.Meta.table_name, key, problem)
    return user


def _account_problem(ctx: Context, stored: dict[str, Any]) -> str | None:  # noqa: PLR0911 - one return per rule
    balance, limit = stored.get("balance"), stored.get("credit_limit")
    for name, value in (
        ("balance", balance), ("openingBalance", stored.get("opening_balance")),
        ("creditLimit", limit), ("available", stored.get("available")),
    ):  # fmt: skip
        if (problem := _number_problem(name, value)) is not None:
            return problem
    currency = stored.get("currency")
    if currency is not None and (problem := _currency_problem(ctx, currency)):
        return problem
    largest = ctx.currencies.max_balance(currency or ctx.default_currency)
    if balance is not None and balance > largest:
        return f"balance {balance} is past the largest {currency or ctx.default_currency} balance"
    if balance is None and stored.get("opening_balance") is not None:
        # Writes start an account with no balance from the ledger's opening balance;
        # reconcile would start it from this one.
        return "openingBalance without balance"
    if limit is not None and limit < 0:
        return f"creditLimit {limit} is negative"
    if limit is not None and stored.get("available") is None:
        return "creditLimit without available (balance + creditLimit, which debits check)"
    return None


@attrs.frozen
class HoldEntry:
    """One hold as its account item holds it.

    Attributes:
        hold_id: The hold's id (its idempotency key).
        remaining: What is still reserved.
        expires_at: When it expires, or None for never.
    """

    hold_id: str
    remaining: Decimal
    expires_at: datetime | None

    def expired(self, now: datetime) -> bool:
        """True from the instant the hold expires."""
        return self.expires_at is not None and self.expires_at <= now


def hold_entries(ctx: Context, raw: dict[str, Any]) -> list[HoldEntry]:
    """The holds an account item holds, oldest expiry first (never-expiring ones last).

    Raises:
        UnreadableRecord: An entry is not a map with a finite ``remaining``.
    """
    entries = []
    for name, value in raw.items():
        if not name.startswith(HOLD_PREFIX):
            continue
        try:
            fields = value["M"]
            remaining = Decimal(fields["remaining"]["N"])
            stamp = fields.get("expiresAt")
            expires = None if stamp is None else parse_timestamp(stamp["S"])
        except (KeyError, TypeError, ValueError, ArithmeticError) as error:
            key = _raw_key(raw, ctx.models.user.user_id.attr_name)
            table = ctx.models.user.Meta.table_name
            raise UnreadableRecord(table, key, f"{name} is not a hold entry ({error})") from None
        if not remaining.is_finite():
            key = _raw_key(raw, ctx.models.user.user_id.attr_name)
            raise UnreadableRecord(ctx.models.user.Meta.table_name, key, f"{name}: {remaining}")
        entries.append(HoldEntry(name[len(HOLD_PREFIX) :], remaining, expires))
    far = datetime.max.replace(tzinfo=timezone.utc)
    return sorted(entries, key=lambda e: (e.expires_at or far, e.hold_id))


def credit_limit(user: User) -> Decimal:
    """How far below zero an account may go: its stored ``creditLimit``, or 0."""
    limit: Decimal | None = user.attribute_values.get("credit_limit")
    return Decimal(0) if limit is None else limit


def account_currency(ctx: Context, user: User) -> str:
    """The currency an account holds: its own, or the ledger's default when none is stored."""
    currency: str | None = user.attribute_values.get("currency")
    return currency or ctx.default_currency


def load_transaction(ctx: Context, raw: dict[str, Any]) -> Transaction:
    """A stored movement record, checked: a user, a positive finite amount, a known type.

    Raises:
        UnreadableRecord: The item breaks one of those rules.
    """
    model = ctx.models.transaction
    key = _raw_key(raw, model.idempotency_key.attr_name)
    record = _instantiate(model, raw, key)
    problem = _record_problem(ctx, record) or _timestamp_problem(record, raw)
    if problem is not None:
        raise UnreadableRecord(model.Meta.table_name, key, problem)
    return record


def applied_at(record: Transaction) -> datetime:
    """When an applied record was applied: its ``timestamp``.

    Raises:
        UnreadableRecord: It has none (another client's record: outside the history
            index, so replays and refunds refuse it as history cannot show it).
    """
    moment: datetime | None = record.attribute_values.get("timestamp")
    if moment is None:
        table = record.Meta.table_name
        raise UnreadableRecord(table, record.idempotency_key, "an applied record with no timestamp")
    return moment


def _timestamp_problem(record: Transaction, raw: dict[str, Any]) -> str | None:
    """A ``timestamp`` that is not a UTC instant, or on a refusal (refusals are not history)."""
    if record.timestamp is None:
        return None
    if record.status == STATUS_REJECTED:
        return f"status {record.status!r} carries a timestamp"
    stamp = _raw_key(raw, _TIMESTAMP)
    if instant_key(stamp) is None:
        return f"timestamp {stamp!r} is not an ISO-8601 UTC instant"
    return None


def entry_order(ctx: Context, raw: dict[str, Any]) -> SortKey:
    """Where an item of the history index stands: its instant, then its key.

    Raises:
        UnreadableRecord: Its ``timestamp`` is not an ISO-8601 UTC instant.
    """
    key = _raw_key(raw, ctx.wire.record_key)
    stamp = _raw_key(raw, _TIMESTAMP)
    instant = instant_key(stamp)
    if instant is None:
        problem = f"timestamp {stamp!r} is not an ISO-8601 UTC instant"
        raise UnreadableRecord(ctx.wire.records_table, key, problem)
    return instant, key


def _record_problem(ctx: Context, record: Transaction) -> str | None:  # noqa: PLR0911 - one return per rule
    if not record.user_id:
        return "no userId"
    if (problem := _amount_problem(record)) is not None:
        return problem
    if record.type not in ENTRY_TYPES:
        return f"type {record.type!r} is not 'credit' or 'debit'"
    if record.currency is not None and (problem := _currency_problem(ctx, record.currency)):
        return problem
    if (record.kind == KIND_POSTING or record.legs is not None) and (
        problem := _legs_problem(record.legs)
    ):
        return problem
    if record.status not in (None, STATUS_APPLIED, STATUS_REJECTED):
        return f"status {record.status!r} is not 'applied' or 'rejected'"
    if record.kind is not None and record.kind not in KINDS:
        return f"kind {record.kind!r} is not one dynaledger writes"
    return None


def _amount_problem(record: Transaction) -> str | None:
    """Why a record's ``amount`` (or the ``refunded`` total of it) cannot be read, or None."""
    amount = record.amount
    if amount is None:
        return "no amount"
    if record.kind == KIND_LIMIT:  # the new limit, which may be 0
        if not amount.is_finite() or amount < 0:
            return f"amount {amount} is not a credit limit"
    elif record.legs is not None and record.kind in (KIND_POSTING, KIND_REFUND):
        # A leg of a posting (or of its refund): 0 for an account whose legs cancel out.
        if not amount.is_finite() or amount < 0:
            return f"amount {amount} is not a posting's net leg"
    elif not amount.is_finite() or amount <= 0:
        return f"amount {amount} is not a positive number"
    refunded = record.refunded
    if refunded is not None and (
        not refunded.is_finite()
        or refunded < 0
        or (record.kind != KIND_POSTING and refunded > amount)
    ):
        return f"refunded {refunded} is not a total given back of {amount}"
    return None


def _number_problem(name: str, value: Decimal | None) -> str | None:
    if value is not None and not value.is_finite():
        return f"{name} {value} is not a finite number"
    return None


def _currency_problem(ctx: Context, currency: str) -> str | None:
    try:
        ctx.currencies.validate(currency)
    except ValidationError as error:
        return f"currency: {error.rule}"
    return None


def read_item(ctx: Context, table: str, key_attribute: str, key: str) -> dict[str, Any] | None:
    """One strongly consistent GetItem, as stored; None when absent.

    Sent through PynamoDB's connection without its request for consumed
    capacity, which nothing here reads and which costs the client time to parse.
    """
    request = {
        "TableName": table,
        "Key": {key_attribute: {"S": key}},
        "ConsistentRead": True,
        "ReturnConsumedCapacity": "NONE",
    }
    try:
        item: dict[str, Any] | None = ctx.models.connection.dispatch(GET_ITEM, request).get("Item")
    except (BotoCoreError, ClientError) as error:
        raise GetError("Failed to get item", error) from error
    return item


def read_user_raw(ctx: Context, user_id: str) -> dict[str, Any] | None:
    """One strongly consistent read of an account item, as stored; None when absent."""
    return read_item(ctx, ctx.wire.users_table, ctx.wire.user_key, user_id)


def read_user(ctx: Context, user_id: str) -> User | None:
    """One strongly consistent read of an account, checked; None when it does not exist."""
    item = read_user_raw(ctx, user_id)
    return None if item is None else load_user(ctx, item)


def read_transaction(ctx: Context, key: str) -> Transaction:
    """One strongly consistent read of a movement record that is known to exist, checked."""
    table = ctx.wire.records_table
    item = read_item(ctx, table, ctx.wire.record_key, key)
    if item is None:
        raise UnreadableRecord(table, key, "the record vanished while it was being read")
    return load_transaction(ctx, item)


# A posting's legs ------------------------------------------------------------------------

#: Separates the fields of one leg in a record's ``legs`` attribute.
LEG_FIELD = "\x1f"


@attrs.frozen
class Posted:
    """One account's net leg as stored: ``type`` is ``"credit"`` or ``"debit"``."""

    user_id: str
    amount: Decimal
    type: str


def encode_legs(legs: Sequence[Posted]) -> str:
    """The ``legs`` attribute: one ``type, amount, user`` line per account."""
    lines = (LEG_FIELD.join((leg.type, format(leg.amount, "f"), leg.user_id)) for leg in legs)
    return "\n".join(lines)


def decode_legs(text: str) -> list[Posted]:
    """The legs an encoded ``legs`` attribute holds (checked when the record was loaded)."""
    legs = []
    for line in text.split("\n") if text else []:
        kind, amount, user_id = line.split(LEG_FIELD, 2)
        legs.append(Posted(user_id, Decimal(amount), kind))
    return legs


def _legs_problem(text: str | None) -> str | None:
    """Why a posting's (or its refund's) ``legs`` cannot be read, or None: lines of
    ``type, amount, user``, each amount a finite number of 0 or more."""
    if not text:
        return "a posting with no legs"
    try:
        legs = decode_legs(text)
    except (ValueError, ArithmeticError):
        return f"legs {text[:80]!r} are not a posting's legs"
    for leg in legs:
        if leg.type not in ENTRY_TYPES or not leg.amount.is_finite() or leg.amount < 0:
            return f"legs {text[:80]!r} are not a posting's legs"
    return None
