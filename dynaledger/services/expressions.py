"""A plan's record puts, account updates and account checks, built as DynamoDB items directly.

Every movement sends a conditional put of each record and a conditional
update of each account. Built through PynamoDB's model instances and
expression objects, those two cost the client more CPU than botocore's own
work on the request (``make bench`` measures both). So they are written here
as expression text: the attribute names come from the bound models once per
ledger (:class:`Wire`), the text follows from the change's shape, and a call
only adds its values. They still go through PynamoDB's
:class:`~pynamodb.transactions.TransactWrite` (:class:`LedgerWrite`), after
any items added the usual way, in PynamoDB's order.

``tests/test_expressions.py`` holds PynamoDB's expressions of the same rules
and checks that both accept and refuse the same changes on the same items.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs
from pynamodb.attributes import Attribute
from pynamodb.constants import ALL_OLD
from pynamodb.exceptions import AttributeNullError
from pynamodb.transactions import TransactWrite

from dynaledger.models import BoundModels
from dynaledger.models.attributes import format_timestamp
from dynaledger.models.transaction import Transaction
from dynaledger.models.user import HOLD_PREFIX

if TYPE_CHECKING:
    from dynaledger.services.engine import AccountChange

# Placeholders of the attribute names (the account's names are fixed by the model).
_USER_NAMES = {
    "#uid": "user_id",
    "#cur": "currency",
    "#bal": "balance",
    "#lim": "credit_limit",
    "#avail": "available",
    "#held": "held",
    "#count": "hold_count",
    "#upd": "updated_at",
}


def number(value: Decimal | int) -> dict[str, str]:
    """A DynamoDB number of plain decimal digits, as :class:`DecimalAttribute` writes it."""
    exact = Decimal(value)
    if not exact.is_finite():
        raise ValueError(f"DynamoDB numbers must be finite, got {exact}")
    return {"N": format(exact, "f")}


@attrs.frozen
class _Field:
    """One attribute of the record model, as its serialization needs it."""

    name: str
    attr_name: str
    attr_type: str
    null: bool
    serialize: Callable[[Any], Any]
    #: The attribute writes its value as it is (PynamoDB's strings): no call needed.
    as_is: bool


@attrs.frozen
class Wire:
    """What a ledger's requests name, looked up once from its bound models."""

    users_table: str
    records_table: str
    user_key: str
    record_key: str
    user_names: dict[str, str]
    record_fields: dict[str, _Field]
    required_fields: tuple[_Field, ...]

    @classmethod
    def of(cls, models: BoundModels) -> Wire:
        users, records = models.user, models.transaction
        user_attributes = users.get_attributes()
        fields = {
            name: _Field(
                name,
                attr.attr_name,
                attr.attr_type,
                attr.null,
                attr.serialize,
                as_is=type(attr).serialize is Attribute.serialize,
            )
            for name, attr in records.get_attributes().items()
        }
        return cls(
            users_table=users.Meta.table_name,
            records_table=records.Meta.table_name,
            user_key=user_attributes["user_id"].attr_name,
            record_key=records.get_attributes()["idempotency_key"].attr_name,
            user_names={
                token: user_attributes[name].attr_name for token, name in _USER_NAMES.items()
            },
            record_fields=fields,
            required_fields=tuple(field for field in fields.values() if not field.null),
        )


class _Expression:
    """Collects the names and values an expression's text uses (DynamoDB refuses unused ones)."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.names: dict[str, str] = {}
        self.values: dict[str, dict[str, Any]] = {}

    def name(self, token: str) -> str:
        """An account attribute's placeholder, such as ``#bal``."""
        self.names[token] = self.wire.user_names[token]
        return token

    def entry(self, token: str, hold_id: str) -> str:
        """The placeholder of the account's attribute holding hold ``hold_id``."""
        self.names[token] = HOLD_PREFIX + hold_id
        return token

    def field(self, token: str, attr_name: str) -> str:
        """The placeholder of a field inside a hold entry (``remaining``, ``expiresAt``)."""
        self.names[token] = attr_name
        return token

    def value(self, token: str, typed: dict[str, Any]) -> str:
        self.values[token] = typed
        return token


def record_item(wire: Wire, record: Transaction) -> dict[str, dict[str, Any]]:
    """``record`` as a DynamoDB item, as PynamoDB's ``serialize`` writes it."""
    given = record.attribute_values
    item: dict[str, dict[str, Any]] = {}
    for name, value in given.items():
        field = wire.record_fields[name]
        serialized = value if field.as_is or value is None else field.serialize(value)
        if serialized is not None:
            item[field.attr_name] = {field.attr_type: serialized}
    for field in wire.required_fields:
        if field.attr_name not in item:
            raise AttributeNullError(field.name)
    return item


def record_put(wire: Wire, record: Transaction) -> dict[str, Any]:
    """The put of a new record: its key must not be taken (else its old item comes back)."""
    return {
        "TableName": wire.records_table,
        "Item": record_item(wire, record),
        "ConditionExpression": "attribute_not_exists(#key)",
        "ExpressionAttributeNames": {"#key": wire.record_key},
        "ReturnValuesOnConditionCheckFailure": ALL_OLD,
    }


def _currency(expr: _Expression, currency: str, default_currency: str) -> str:
    """The account holds ``currency``: an account with none holds the default one."""
    held = f"{expr.name('#cur')} = {expr.value(':cur', {'S': currency})}"
    if currency == default_currency:
        return f"(attribute_not_exists(#cur) OR {held})"
    return held


def account_check(wire: Wire, user_id: str, currency: str, default_currency: str) -> dict[str, Any]:
    """A condition check: the account exists and holds ``currency``; nothing is written."""
    expr = _Expression(wire)
    condition = (
        f"attribute_exists({expr.name('#uid')}) AND {_currency(expr, currency, default_currency)}"
    )
    return {
        "TableName": wire.users_table,
        "Key": {wire.user_key: {"S": user_id}},
        "ConditionExpression": condition,
        "ExpressionAttributeNames": expr.names,
        "ExpressionAttributeValues": expr.values,
    }


def _bound(expr: _Expression, op: str, token: str, bound: Decimal, opening: Decimal) -> str:
    """``balance op bound`` (a never-written balance is ``opening``) on an account without a
    credit limit, ``available op bound`` on one with a limit."""
    value = expr.value(token, number(bound))
    within = f"{expr.name('#bal')} {op} {value}"
    if (opening >= bound) if op == ">=" else (opening <= bound):
        within = f"({within} OR attribute_not_exists(#bal))"
    return (
        f"((attribute_not_exists({expr.name('#lim')}) AND {within}) OR "
        f"(attribute_exists(#lim) AND {expr.name('#avail')} {op} {value}))"
    )


def _condition(expr: _Expression, change: AccountChange, opening: Decimal, default: str) -> str:
    parts = [f"attribute_exists({expr.name('#uid')})", _currency(expr, change.currency, default)]
    if change.floor is not None and change.floor > 0:
        parts.append(_bound(expr, ">=", ":floor", change.floor, opening))
    if change.ceiling is not None:
        parts.append(_bound(expr, "<=", ":ceiling", change.ceiling, opening))
    for i, changed in enumerate(change.entry_changes):
        entry = expr.entry(f"#e{i}", changed.hold_id)
        remaining = expr.field("#rem", "remaining")
        parts.append(f"{entry}.{remaining} = {expr.value(f':e{i}', number(changed.expected))}")
        if changed.expired_at is not None:
            stamp = expr.value(f":e{i}at", {"S": format_timestamp(changed.expired_at)})
            parts.append(f"{entry}.{expr.field('#exp', 'expiresAt')} <= {stamp}")
    for i, new in enumerate(change.new_entries):
        parts.append(f"attribute_not_exists({expr.entry(f'#n{i}', new.hold_id)})")
    if change.new_entries and change.max_holds is not None:
        room = expr.value(":room", number(change.max_holds - len(change.new_entries)))
        count = expr.name("#count")
        parts.append(f"(attribute_not_exists({count}) OR {count} <= {room})")
    return " AND ".join(parts)


def _add(expr: _Expression, token: str, start: str, delta: Decimal | int, size: str) -> str:
    """``#attr = if_not_exists(#attr, start) +/- |delta|``."""
    sign = "+" if delta >= 0 else "-"
    return f"{expr.name(token)} = if_not_exists({token}, {start}) {sign} {size}"


def _update(expr: _Expression, change: AccountChange, opening: Decimal, now: datetime) -> str:
    sets = [f"{expr.name('#upd')} = {expr.value(':now', {'S': format_timestamp(now)})}"]
    removes: list[str] = []
    if change.touch_balance or change.credit_limit is not None:
        expr.value(":opening", number(opening))
    if change.touch_balance:
        # ``available`` follows ``balance``; it is read only where ``creditLimit`` is
        # stored, and setting a limit derives it from the balance afresh.
        size = expr.value(":delta", number(change.balance_delta.copy_abs()))
        sets.append(_add(expr, "#bal", ":opening", change.balance_delta, size))
        sets.append(_add(expr, "#avail", ":opening", change.balance_delta, size))
    elif change.credit_limit is not None:
        limit = expr.value(":limit", number(change.credit_limit))
        sets.append(f"{expr.name('#lim')} = {limit}")
        start = f"if_not_exists({expr.name('#bal')}, :opening)"
        sets.append(f"{expr.name('#avail')} = {start} + {limit}")
    if change.held_delta or change.count_delta:
        expr.value(":zero", number(0))
    if change.held_delta:
        size = expr.value(":held", number(change.held_delta.copy_abs()))
        sets.append(_add(expr, "#held", ":zero", change.held_delta, size))
    if change.count_delta:
        size = expr.value(":count", number(abs(change.count_delta)))
        sets.append(_add(expr, "#count", ":zero", change.count_delta, size))
    for i, new in enumerate(change.new_entries):
        entry: dict[str, Any] = {"remaining": number(new.remaining)}
        if new.expires_at is not None:
            entry["expiresAt"] = {"S": format_timestamp(new.expires_at)}
        sets.append(f"#n{i} = {expr.value(f':n{i}', {'M': entry})}")
    for i, changed in enumerate(change.entry_changes):
        if changed.remaining == 0:
            removes.append(f"#e{i}")
        else:
            amount = expr.value(f":e{i}r", number(changed.remaining))
            sets.append(f"#e{i}.{expr.field('#rem', 'remaining')} = {amount}")
    text = "SET " + ", ".join(sets)
    return text + (" REMOVE " + ", ".join(removes) if removes else "")


def account_update(
    wire: Wire, change: AccountChange, *, opening: Decimal, default_currency: str, now: datetime
) -> dict[str, Any]:
    """The conditional update of one account; a refusal returns the account as it is."""
    expr = _Expression(wire)
    condition = _condition(expr, change, opening, default_currency)
    update = _update(expr, change, opening, now)
    return {
        "TableName": wire.users_table,
        "Key": {wire.user_key: {"S": change.user_id}},
        "UpdateExpression": update,
        "ConditionExpression": condition,
        "ExpressionAttributeNames": expr.names,
        "ExpressionAttributeValues": expr.values,
        "ReturnValuesOnConditionCheckFailure": ALL_OLD,
    }


class LedgerWrite(TransactWrite):
    """PynamoDB's ``TransactWrite``, also taking items built here.

    PynamoDB sends condition checks, deletes, puts, then updates, each kind
    in the order added; items added here join the same lists, so the order
    (and the order of the cancellation reasons) is the same either way.
    """

    def add_condition_check(self, item: dict[str, Any]) -> None:
        self._condition_check_items.append(item)

    def add_put(self, item: dict[str, Any]) -> None:
        self._put_items.append(item)

    def add_update(self, item: dict[str, Any]) -> None:
        self._update_items.append(item)
