"""A plan's record puts, account updates and account checks, built as DynamoDB items directly.

Every movement sends a conditional put of each record and a conditional
update of each account. Built through PynamoDB's model instances and
expression objects, those two cost the client more CPU than botocore's own
work on the request (``make bench`` measures both). So they are written here
as expression text: the attribute names come from the bound models once per
ledger (:class:`Wire`), the text follows from the change's shape, and a call
only adds its values; a credit's or debit's whole request is kept per shape
(:class:`TransactTemplate`). They still go through PynamoDB's
:class:`~pynamodb.transactions.TransactWrite` (:class:`LedgerWrite`), after
any items added the usual way, in PynamoDB's order.

``tests/test_expressions.py`` holds PynamoDB's expressions of the same rules
and checks that both accept and refuse the same changes on the same items.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs
from pynamodb.attributes import Attribute
from pynamodb.constants import ALL_OLD
from pynamodb.exceptions import AttributeNullError
from pynamodb.transactions import TransactWrite

from dynaledger.errors import LedgerError
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
    exact = value if type(value) is Decimal else Decimal(value)
    if not exact.is_finite():
        raise ValueError(f"DynamoDB numbers must be finite, got {exact}")
    return {"N": format(exact, "f")}


#: How one record attribute is written: its DynamoDB name and type, and its serializer
#: (None for PynamoDB's strings, written as they are).
_Field = tuple[str, str, Callable[[Any], Any] | None]


@attrs.frozen
class Wire:
    """What a ledger's requests name, looked up once from its bound models."""

    users_table: str
    records_table: str
    user_key: str
    record_key: str
    user_names: dict[str, str]
    record_fields: dict[str, _Field]
    #: The DynamoDB names of the record attributes that may not be null, by their names.
    required_fields: dict[str, str]
    #: Account update text by shape (see :func:`account_update`), filled as shapes are sent.
    account_texts: dict[tuple[object, ...], _AccountText] = attrs.field(
        factory=dict, eq=False, repr=False
    )
    #: A transact's two items by shape (see :class:`TransactTemplate`), filled as shapes are sent.
    transact_templates: dict[tuple[object, ...], TransactTemplate] = attrs.field(
        factory=dict, eq=False, repr=False
    )

    @classmethod
    def of(cls, models: BoundModels) -> Wire:
        users, records = models.user, models.transaction
        user_attributes = users.get_attributes()
        attributes = records.get_attributes()
        fields: dict[str, _Field] = {
            name: (
                attr.attr_name,
                attr.attr_type,
                None if type(attr).serialize is Attribute.serialize else attr.serialize,
            )
            for name, attr in attributes.items()
        }
        return cls(
            users_table=users.Meta.table_name,
            records_table=records.Meta.table_name,
            user_key=user_attributes["user_id"].attr_name,
            record_key=attributes["idempotency_key"].attr_name,
            user_names={
                token: user_attributes[name].attr_name for token, name in _USER_NAMES.items()
            },
            record_fields=fields,
            required_fields={
                attr.attr_name: name for name, attr in attributes.items() if not attr.null
            },
        )


class _Expression:
    """Collects the names an expression's text uses (DynamoDB refuses unused ones).

    Its values are not collected here: :func:`_account_values` gives them, from
    the change alone, so that text built once per shape serves every call.
    """

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.names: dict[str, str] = {}

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


def record_item(wire: Wire, record: Transaction) -> dict[str, dict[str, Any]]:
    """``record`` as a DynamoDB item, as PynamoDB's ``serialize`` writes it."""
    fields = wire.record_fields
    item: dict[str, dict[str, Any]] = {}
    for name, given in record.attribute_values.items():
        attr_name, attr_type, serialize = fields[name]
        written = given if serialize is None or given is None else serialize(given)
        if written is not None:
            item[attr_name] = {attr_type: written}
    if not wire.required_fields.keys() <= item.keys():
        missing = next(name for name in wire.required_fields if name not in item)
        raise AttributeNullError(wire.required_fields[missing])
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
    """The account holds ``:cur``: an account with none holds the default currency."""
    held = f"{expr.name('#cur')} = :cur"
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
        "ExpressionAttributeValues": {":cur": {"S": currency}},
    }


def _account_values(
    change: AccountChange, opening: Decimal, now: datetime
) -> dict[str, dict[str, Any]]:
    """Every value an account's update and condition name, by placeholder.

    The one place the values come from, for text built per call or per shape
    alike; which placeholders the text names follows from the same fields.
    """
    values: dict[str, dict[str, Any]] = {
        ":cur": {"S": change.currency},
        ":now": {"S": format_timestamp(now)},
    }
    if change.floor is not None and change.floor > 0:
        values[":floor"] = number(change.floor)
    if change.ceiling is not None:
        values[":ceiling"] = number(change.ceiling)
    if change.touch_balance or change.credit_limit is not None:
        values[":opening"] = number(opening)
    if change.touch_balance:
        values[":delta"] = number(change.balance_delta.copy_abs())
        values[":zero"] = {"N": "0"}
    elif change.credit_limit is not None:
        values[":limit"] = number(change.credit_limit)
    if change.held_delta:
        values[":zero"] = {"N": "0"}
        values[":held"] = number(change.held_delta.copy_abs())
    if change.new_entries or change.entry_changes:
        _add_entry_values(values, change)
    return values


def _add_entry_values(values: dict[str, dict[str, Any]], change: AccountChange) -> None:
    """The values of the hold entries ``change`` adds and changes, and of ``holdCount``."""
    if change.count_delta:
        values[":zero"] = {"N": "0"}
        values[":count"] = number(abs(change.count_delta))
    for i, changed in enumerate(change.entry_changes):
        values[f":e{i}"] = number(changed.expected)
        if changed.expired_at is not None:
            values[f":e{i}at"] = {"S": format_timestamp(changed.expired_at)}
        if changed.remaining != 0:
            values[f":e{i}r"] = number(changed.remaining)
    for i, new in enumerate(change.new_entries):
        entry: dict[str, Any] = {"remaining": number(new.remaining)}
        if new.expires_at is not None:
            entry["expiresAt"] = {"S": format_timestamp(new.expires_at)}
        values[f":n{i}"] = {"M": entry}
    if change.new_entries and change.max_holds is not None:
        values[":room"] = number(change.max_holds - len(change.new_entries))


def _balance_bound(expr: _Expression, op: str, token: str, bound: Decimal, opening: Decimal) -> str:
    """``balance op bound``, a never-written balance being ``opening``."""
    within = f"{expr.name('#bal')} {op} {token}"
    if (opening >= bound) if op == ">=" else (opening <= bound):
        within = f"({within} OR attribute_not_exists(#bal))"
    return within


def _bound(expr: _Expression, op: str, token: str, bound: Decimal, opening: Decimal) -> str:
    """``balance op bound`` (a never-written balance is ``opening``) on an account without a
    credit limit, ``available op bound`` on one with a limit."""
    within = _balance_bound(expr, op, token, bound, opening)
    return (
        f"((attribute_not_exists({expr.name('#lim')}) AND {within}) OR "
        f"(attribute_exists(#lim) AND {expr.name('#avail')} {op} {token}))"
    )


def _condition(expr: _Expression, change: AccountChange, opening: Decimal, default: str) -> str:
    parts = [f"attribute_exists({expr.name('#uid')})", _currency(expr, change.currency, default)]
    floored = False
    if change.floor is not None and change.floor > 0:
        parts.append(_bound(expr, ">=", ":floor", change.floor, opening))
        floored = True
    if change.ceiling is not None and change.credit_limit is not None:
        # A new limit: ``available`` becomes balance + limit, so the balance itself is bound.
        parts.append(_balance_bound(expr, "<=", ":ceiling", change.ceiling, opening))
    elif change.ceiling is not None:
        parts.append(_bound(expr, "<=", ":ceiling", change.ceiling, opening))
    elif change.touch_balance and not floored:
        # Unbounded (a capture's payee, a void, a release): a limit without ``available``
        # (a hand edit the reads refuse) is refused here too, not given one counted from 0.
        lim, avail = expr.name("#lim"), expr.name("#avail")
        parts.append(f"(attribute_not_exists({lim}) OR attribute_exists({avail}))")
    for i, changed in enumerate(change.entry_changes):
        entry = expr.entry(f"#e{i}", changed.hold_id)
        parts.append(f"{entry}.{expr.field('#rem', 'remaining')} = :e{i}")
        if changed.expired_at is not None:
            parts.append(f"{entry}.{expr.field('#exp', 'expiresAt')} <= :e{i}at")
    for i, new in enumerate(change.new_entries):
        parts.append(f"attribute_not_exists({expr.entry(f'#n{i}', new.hold_id)})")
    if change.new_entries and change.max_holds is not None:
        count = expr.name("#count")
        parts.append(f"(attribute_not_exists({count}) OR {count} <= :room)")
    return " AND ".join(parts)


def _add(expr: _Expression, token: str, start: str, delta: Decimal | int, size: str) -> str:
    """``#attr = if_not_exists(#attr, start) +/- |delta|``."""
    sign = "+" if delta >= 0 else "-"
    return f"{expr.name(token)} = if_not_exists({token}, {start}) {sign} {size}"


def _update(expr: _Expression, change: AccountChange) -> str:
    sets = [f"{expr.name('#upd')} = :now"]
    removes: list[str] = []
    if change.touch_balance:
        # ``available`` follows ``balance``; it is read only where ``creditLimit`` is
        # stored, and setting a limit derives it from the balance afresh. Where it is
        # new it starts from 0: on an account without a limit it is then the balance
        # less the balance it started from, within the largest balance either way,
        # so never past DynamoDB's 38 digits.
        sets.append(_add(expr, "#bal", ":opening", change.balance_delta, ":delta"))
        sets.append(_add(expr, "#avail", ":zero", change.balance_delta, ":delta"))
    elif change.credit_limit is not None:
        sets.append(f"{expr.name('#lim')} = :limit")
        start = f"if_not_exists({expr.name('#bal')}, :opening)"
        sets.append(f"{expr.name('#avail')} = {start} + :limit")
    if change.held_delta:
        sets.append(_add(expr, "#held", ":zero", change.held_delta, ":held"))
    if change.count_delta:
        sets.append(_add(expr, "#count", ":zero", change.count_delta, ":count"))
    for i in range(len(change.new_entries)):
        sets.append(f"#n{i} = :n{i}")
    for i, changed in enumerate(change.entry_changes):
        if changed.remaining == 0:
            removes.append(f"#e{i}")
        else:
            sets.append(f"#e{i}.{expr.field('#rem', 'remaining')} = :e{i}r")
    text = "SET " + ", ".join(sets)
    return text + (" REMOVE " + ", ".join(removes) if removes else "")


@attrs.frozen
class _AccountText:
    """An account update's text and names, the same for every change of one shape."""

    update: str
    condition: str
    names: dict[str, str]


def _account_text(
    wire: Wire, change: AccountChange, opening: Decimal, default_currency: str
) -> _AccountText:
    expr = _Expression(wire)
    condition = _condition(expr, change, opening, default_currency)
    return _AccountText(_update(expr, change), condition, expr.names)


def _shape(change: AccountChange, opening: Decimal, default_currency: str) -> tuple[object, ...]:
    """What an account update's text depends on, for a change with no hold entries.

    Everything :func:`_condition` and :func:`_update` branch on: the value of each
    field only goes into the values. ``tests/test_expressions.py`` checks the
    text kept per shape against text built afresh, over random changes.
    """
    floor, ceiling = change.floor, change.ceiling
    return (
        change.currency == default_currency,
        None if floor is None or floor <= 0 else opening >= floor,
        None if ceiling is None else opening <= ceiling,
        change.touch_balance,
        change.credit_limit is not None,
        change.balance_delta >= 0,
        None if not change.held_delta else change.held_delta >= 0,
    )


_TOKEN = re.compile(r":\w+")


def _keep_text(
    wire: Wire,
    shape: tuple[object, ...],
    change: AccountChange,
    *,
    opening: Decimal,
    default_currency: str,
    values: dict[str, dict[str, Any]],
) -> _AccountText:
    """Build the text of ``change``'s shape, check it names exactly ``values``, and keep it."""
    text = _account_text(wire, change, opening, default_currency)
    named = set(_TOKEN.findall(text.update + " " + text.condition))
    if named != values.keys():  # a bug here, not a caller's error
        raise LedgerError(f"account update names {sorted(named)}, has {sorted(values)}")
    wire.account_texts[shape] = text
    return text


def account_update(
    wire: Wire, change: AccountChange, *, opening: Decimal, default_currency: str, now: datetime
) -> dict[str, Any]:
    """The conditional update of one account; a refusal returns the account as it is.

    The text of a change without hold entries (every credit, debit and
    transfer) is built once per shape and ledger; a call only adds its values.
    Hold entries name their hold ids, so theirs is built per call.
    """
    values = _account_values(change, opening, now)
    if change.new_entries or change.entry_changes:
        text = _account_text(wire, change, opening, default_currency)
    else:
        shape = _shape(change, opening, default_currency)
        text = wire.account_texts.get(shape) or _keep_text(
            wire, shape, change, opening=opening, default_currency=default_currency, values=values
        )
    return {
        "TableName": wire.users_table,
        "Key": {wire.user_key: {"S": change.user_id}},
        "UpdateExpression": text.update,
        "ConditionExpression": text.condition,
        "ExpressionAttributeNames": dict(text.names),
        "ExpressionAttributeValues": values,
        "ReturnValuesOnConditionCheckFailure": ALL_OLD,
    }


@attrs.frozen
class TransactTemplate:
    """A transact's record put and account update with all but the call's own values in place.

    Built once per ledger and shape from the items :func:`record_put` and
    :func:`account_update` give for the first call of that shape. The shape (see
    ``movements._Movement._send_transact``) holds all that the items depend on
    besides what :meth:`fill` puts in: the record's key, account, amount,
    fingerprint, request id, instant and metadata; the account's key, ``:now``,
    ``:delta`` and its bound. A credit or debit then skips its plan's objects
    and the item building (the README's "Cost and speed" measures what that saves).
    ``tests/test_expressions.py`` checks the filled items against those built
    afresh, over random transacts.
    """

    put: dict[str, Any]
    update: dict[str, Any]
    #: The record attributes a call fills in, by their names: their DynamoDB names.
    names: dict[str, str]
    #: The placeholder of the account's bound: ``:floor`` for a debit, ``:ceiling`` for a credit.
    bound: str
    #: The account's key attribute (``userId``).
    user_key: str
    #: How the record's ``metadata`` is written (its attribute's ``serialize``).
    metadata: Callable[[dict[str, str]], Any]

    @classmethod
    def of(cls, wire: Wire, put: dict[str, Any], update: dict[str, Any]) -> TransactTemplate:
        values = update["ExpressionAttributeValues"]
        names = {name: wire.record_fields[name][0] for name in _FILLED}
        static = {attr: typed for attr, typed in put["Item"].items() if attr not in names.values()}
        return cls(
            put={**put, "Item": static},
            update=update,
            names=names,
            bound=":floor" if ":floor" in values else ":ceiling",
            user_key=wire.user_key,
            metadata=wire.record_fields["metadata"][2] or dict,  # None: written as it is
        )

    def fill(
        self,
        *,
        key: str,
        user_id: str,
        amount: str,
        bound: str,
        fingerprint: str,
        request_id: str,
        stamp: str,
        metadata: dict[str, str] | None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The put and the update of one call: ``amount`` and ``bound`` as plain digits."""
        names = self.names
        item = {
            **self.put["Item"],
            names["idempotency_key"]: {"S": key},
            names["user_id"]: {"S": user_id},
            names["amount"]: {"N": amount},
            names["fingerprint"]: {"S": fingerprint},
            names["request_id"]: {"S": request_id},
            names["timestamp"]: {"S": stamp},
        }
        if metadata:
            item[names["metadata"]] = {"M": self.metadata(metadata)}
        update = self.update
        values = {
            **update["ExpressionAttributeValues"],
            ":now": {"S": stamp},
            ":delta": {"N": amount},
            self.bound: {"N": bound},
        }
        # Fresh dicts down to the names and values a hook could change; the typed
        # values inside are written once and never changed, as botocore leaves them.
        put = self.put
        return (
            {
                **put,
                "Item": item,
                "ExpressionAttributeNames": dict(put["ExpressionAttributeNames"]),
            },
            {
                **update,
                "Key": {self.user_key: {"S": user_id}},
                "ExpressionAttributeNames": dict(update["ExpressionAttributeNames"]),
                "ExpressionAttributeValues": values,
            },
        )


#: The record attributes :meth:`TransactTemplate.fill` writes per call.
_FILLED = (
    "idempotency_key", "user_id", "amount", "fingerprint", "request_id", "timestamp", "metadata",
)  # fmt: skip


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
