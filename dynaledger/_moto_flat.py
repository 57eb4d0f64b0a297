"""moto's DynamoDB at constant cost per request, for the embedded endpoint only.

moto 5.2 has two costs that grow with the tables:

* ``TransactWriteItems`` deep-copies every table the request names, once per
  item, so that it can roll back: O(table size) per transaction.
* ``Query`` walks and sorts every item of the table (``Table.all_items``),
  even when the key condition names one partition: O(n log n) per page.

Here, moto's own code still serves both: it parses the request, evaluates
every condition and update expression, writes the items, builds each
cancellation reason with its ``ALL_OLD`` item, sorts and pages query results
and computes ``LastEvaluatedKey``. Only two things change:

* Before a transaction, the items it names (and the length of each stream) are
  saved; the table copy moto asks for is the table itself; if the call fails,
  those items are put back (the ones that did not exist are deleted) and the
  stream records it added are trimmed. Only the named keys can change, so this
  leaves the tables as moto's copy would have.
* A query runs on a view of the table holding only the items whose partition
  key (of the table or of the index) equals the one asked for: a superset of
  what moto keeps after its first filter, so its answer is the same. Index
  partitions come from a value index kept current after each request.

Why a handler subclass and per-request instance attributes, not a patch: only
the app :func:`create_app` builds dispatches to :class:`FlatDynamoHandler`, so
other users of moto in the process (``mock_aws``, moto's own server) keep
stock behaviour. The two hooks moto's code must go through (``copy.deepcopy``
of a table, ``Table.query``) are set as attributes of the one table a request
names, while the endpoint's lock is held, and removed when it ends; each checks
the calling thread and behaves as stock moto in any other one.

The value index only sees writes that come through this endpoint. Writing to
the same tables by another route (``mock_aws`` in the same process) is not
supported. Any other request this module does not know to be read-only or to
name its keys drops the indexes of the table it names (all of them if it names
none), which are rebuilt on the next index query.

Two deliberate differences: stock moto leaves a transaction half applied when
an item carries two operations (``TransactWriteSingleOpException`` escapes its
rollback); here any failure rolls back. And moto adds and subtracts numbers
with ``int()`` of any value written without a ``.`` and writes the result with
``str(Decimal)``: 1 minus 1.00000000 is stored as ``0E-8``, which the next sum
cannot read (a ``ValueError``, answered as a bogus cancellation reason), so an
account in an 8- or 18-decimal asset that once reached 0 could not be written
again. DynamoDB reads and adds any number it stores, and refuses a result past
its 38 digits; here, in the thread serving a request of this endpoint, sums and
differences are computed as exact decimals, written in plain digits
(``0.00000000``), and refused as DynamoDB refuses them (a ``ValidationError``
cancellation reason in a transaction). The one class-level change this needs
(``DynamoType.__add__``, ``__sub__``) runs moto's own methods in any other thread.
Likewise a comparison of a string with a number (``held > :zero`` on an item an
operator wrote ``held`` into as a string) is false here, as in DynamoDB, where
moto fails with a 500.

``tests/test_moto_fidelity.py`` proves all of this against stock moto, and
fails if a moto upgrade brings table copies back.
"""

from __future__ import annotations

import copy
import inspect
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from decimal import Context, Decimal
from typing import Any

from moto.core.utils import convert_to_flask_response
from moto.dynamodb import comparisons
from moto.dynamodb.exceptions import MockValidationException
from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler

_Key = tuple[DynamoType, DynamoType | None]

#: Actions that never change an item: the value index stays valid across them.
_READ_ONLY = frozenset(
    {
        "BatchGetItem", "DescribeContinuousBackups", "DescribeEndpoints", "DescribeLimits",
        "DescribeTable", "DescribeTimeToLive", "GetItem", "ListTables", "ListTagsOfResource",
        "Query", "Scan", "TransactGetItems",
    }
)  # fmt: skip

#: Actions whose request names every key it may change.
_KEYED_WRITES = frozenset(
    {"BatchWriteItem", "DeleteItem", "PutItem", "TransactWriteItems", "UpdateItem"}
)

_QUERY_SIGNATURE = inspect.signature(Table.query)


# Rollback of the named items ---------------------------------------------------------


def _table_key(table: Table, attrs: dict[str, Any]) -> _Key:
    hash_value = DynamoType(attrs[table.hash_key_attr])
    if table.range_key_attr is None:
        return hash_value, None
    return hash_value, DynamoType(attrs[table.range_key_attr])


def _items(table: Table) -> dict[DynamoType, Any]:
    """A table's items: hash -> Item, or hash -> {range -> Item} with a range key."""
    items: dict[DynamoType, Any] = table.items
    return items


def _current(table: Table, key: _Key) -> Item | None:
    """The stored item under ``key``, read without creating an empty partition."""
    hash_value, range_value = key
    stored = _items(table).get(hash_value)
    if range_value is None or stored is None:
        return stored
    return stored.get(range_value)  # type: ignore[no-any-return]


def _named_keys(
    backend: DynamoDBBackend, requests: list[dict[str, Any]]
) -> Iterator[tuple[Table, _Key]]:
    """Every (table, key) a list of ``{"Put": ...}``-style operations can write."""
    for request in requests:
        for kind, operation in request.items():
            table = backend.tables.get(operation.get("TableName", ""))
            attrs = operation.get("Item" if kind in {"Put", "PutRequest"} else "Key")
            if table is None or not isinstance(attrs, dict):
                continue
            try:
                yield table, _table_key(table, attrs)
            except (KeyError, TypeError, AttributeError):
                continue  # moto refuses this operation before it writes anything


class _Snapshot:
    """The items a transaction names and each stream's length, as they were before it."""

    def __init__(self, backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        self.items: dict[tuple[int, _Key], tuple[Table, _Key, bool, Item | None]] = {}
        self.streams: dict[int, tuple[Table, int]] = {}
        for table, key in _named_keys(backend, transact_items):
            partition_existed = key[0] in _items(table)
            saved = copy.deepcopy(_current(table, key))
            self.items.setdefault((id(table), key), (table, key, partition_existed, saved))
            if table.stream_shard is not None:
                self.streams.setdefault(id(table), (table, len(table.stream_shard.items)))

    @property
    def tables(self) -> list[Table]:
        return list({id(t): t for t, _, _, _ in self.items.values()}.values())

    def restore(self) -> None:
        """Put every named item back as it was; trim the stream records added since."""
        for table, (hash_value, range_value), partition_existed, saved in self.items.values():
            items = _items(table)
            if range_value is None:
                if saved is None:
                    items.pop(hash_value, None)
                else:
                    items[hash_value] = saved
                continue
            if saved is not None:
                items[hash_value][range_value] = saved
                continue
            partition = items.get(hash_value)
            if partition is not None:
                partition.pop(range_value, None)
                if not partition and not partition_existed:
                    del items[hash_value]
        for table, length in self.streams.values():
            if table.stream_shard is not None:
                del table.stream_shard.items[length:]


def _plain_deepcopy(obj: Any, memo: dict[int, Any]) -> Any:
    """What ``copy.deepcopy`` does for a plain object, minus our hook attribute."""
    cls: Any = type(obj)
    clone = cls.__new__(cls)
    memo[id(obj)] = clone
    state = {k: v for k, v in vars(obj).items() if k not in _HOOKS}
    vars(clone).update(copy.deepcopy(state, memo))
    return clone


_HOOKS = ("__deepcopy__", "query")


def _install(table: Table, name: str, own: Callable[..., Any], other: Callable[..., Any]) -> None:
    """Set hook ``name`` on this table: ``own`` in this thread, ``other`` in any other."""
    owner = threading.get_ident()

    def hook(*args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() == owner:
            return own(*args, **kwargs)
        return other(*args, **kwargs)

    vars(table)[name] = hook


def _remove(table: Table, name: str) -> None:
    vars(table).pop(name, None)


# Queries on one partition ------------------------------------------------------------


class _ValueIndex:
    """Which items of one table hold each value of one attribute."""

    def __init__(self, table: Table, attribute: str) -> None:
        self.table, self.attribute, self.items = table, attribute, table.items
        self.keys_by_value: dict[DynamoType, dict[_Key, None]] = defaultdict(dict)
        self.value_by_key: dict[_Key, DynamoType] = {}
        for item in _all_items(table):
            self._add((item.hash_key, item.range_key), item)

    def current(self, table: Table) -> bool:
        return table is self.table and table.items is self.items

    def _add(self, key: _Key, item: Item | None) -> None:
        value = None if item is None else item.attrs.get(self.attribute)
        if value is not None:
            self.keys_by_value[value][key] = None
            self.value_by_key[key] = value

    def refresh(self, key: _Key) -> None:
        old = self.value_by_key.pop(key, None)
        if old is not None:
            keys = self.keys_by_value[old]
            keys.pop(key, None)
            if not keys:
                del self.keys_by_value[old]
        self._add(key, _current(self.table, key))

    def keys(self, value: DynamoType) -> list[_Key]:
        return list(self.keys_by_value.get(value, ()))


def _all_items(table: Table) -> Iterator[Item]:
    for stored in _items(table).values():
        if table.range_key_attr is None:
            yield stored
        else:
            yield from stored.values()


class _ValueIndexes:
    """The value indexes of every table, kept current after each request."""

    def __init__(self) -> None:
        self.by_table: dict[tuple[int, str], _ValueIndex] = {}

    def get(self, table: Table, attribute: str) -> _ValueIndex:
        index = self.by_table.get((id(table), attribute))
        if index is None or not index.current(table):
            index = self.by_table[(id(table), attribute)] = _ValueIndex(table, attribute)
        return index

    def after(self, action: str, params: dict[str, Any], backend: DynamoDBBackend) -> None:
        """Bring the indexes up to date with what a request may have written."""
        if action in _READ_ONLY or not self.by_table:
            return
        if action not in _KEYED_WRITES:
            # CreateTable, UpdateTable, PartiQL, restores...: drop what the request may touch.
            table = backend.tables.get(params.get("TableName") or "")
            if table is None:
                self.by_table.clear()
            else:
                self.by_table = {k: v for k, v in self.by_table.items() if v.table is not table}
            return
        if action == "TransactWriteItems":
            requests = params.get("TransactItems", [])
        elif action == "BatchWriteItem":
            requests = [
                {kind: {"TableName": name, **operation}}
                for name, writes in params.get("RequestItems", {}).items()
                for write in writes
                for kind, operation in write.items()
            ]
        else:
            kind = "Put" if action == "PutItem" else "Key"
            requests = [{kind: params}]
        named = list(_named_keys(backend, requests))
        if len(named) != len(requests):
            self.by_table.clear()  # a key we cannot read: start again rather than guess
            return
        for table, key in named:
            for index in self.by_table.values():
                if index.table is table:
                    index.refresh(key)


_INDEXES = _ValueIndexes()


def _narrowed(table: Table, items: list[Item]) -> Table:
    """A shallow view of ``table`` holding only ``items``."""
    view = copy.copy(table)
    narrowed: defaultdict[DynamoType, Any] = defaultdict(dict)
    for item in items:
        if table.range_key_attr is None:
            narrowed[item.hash_key] = item
        else:
            narrowed[item.hash_key][item.range_key] = item
    view.items = narrowed
    return view


def _partition_query(table: Table) -> Callable[..., Any]:
    """``Table.query`` on only the items of the partition the key condition names."""

    def query(*args: Any, **kwargs: Any) -> Any:
        bound = _QUERY_SIGNATURE.bind(table, *args, **kwargs)
        index_name = bound.arguments.get("index_name")
        candidates = _candidates(
            table, index_name, bound.arguments.get("hash_key"),
            bound.arguments.get("hash_key_conditions") or [],
        )  # fmt: skip
        if candidates is None:
            return Table.query(*bound.args, **bound.kwargs)
        view = _narrowed(table, candidates)
        return Table.query(view, *bound.args[1:], **bound.kwargs)

    return query


def _candidates(
    table: Table,
    index_name: str | None,
    hash_key: DynamoType | None,
    conditions: list[tuple[str, DynamoType]],
) -> list[Item] | None:
    """The items that can match, or None when moto should look at the whole table."""
    if not index_name:
        if hash_key is None:
            return None
        stored = _items(table).get(hash_key)
        if stored is None:
            return []
        return [stored] if table.range_key_attr is None else list(stored.values())
    index = {i.name: i for i in table.all_indexes()}.get(index_name)
    hash_names = [] if index is None else [
        k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH"
    ]  # fmt: skip
    values = [value for name, value in conditions if hash_names == [name]]
    if len(values) != 1:
        return None  # an unknown index, a composite key: moto walks the table
    found = []
    for key in _INDEXES.get(table, hash_names[0]).keys(values[0]):
        item = _current(table, key)
        if item is not None:
            found.append(item)
    return found


# Numbers -----------------------------------------------------------------------------

#: ``action`` is the action a thread serves for this endpoint, while it serves it.
_THREAD = threading.local()
#: Wide enough that a sum of two numbers DynamoDB holds is exact, however far apart.
_WIDE = Context(prec=400)
_DIGITS, _LARGEST = 38, Decimal("1E126")


class ValidationError(Exception):
    """A number DynamoDB would not store, in a transaction: its reason's code and message."""


def _decimal_arithmetic(
    original: Callable[[DynamoType, DynamoType], DynamoType],
    operation: Callable[[Context, Decimal, Decimal], Decimal],
) -> Callable[[DynamoType, DynamoType], DynamoType]:
    """moto's number operator, computed as decimals in plain digits while serving here.

    A result DynamoDB would refuse (more than 38 significant digits, a magnitude of
    10**126 or more) is refused as DynamoDB refuses it: a ``ValidationError``
    cancellation reason in a transaction, a ``ValidationException`` elsewhere.
    """

    def method(self: DynamoType, other: DynamoType) -> DynamoType:
        action = getattr(_THREAD, "action", None)
        if action is None or self.type != other.type or not self.is_number():
            return original(self, other)
        result = operation(_WIDE, Decimal(self.value), Decimal(other.value))
        problem = None
        if len(result.normalize(_WIDE).as_tuple().digits) > _DIGITS:
            problem = "Attempting to store more than 38 significant digits in a Number"
        elif abs(result) >= _LARGEST:
            problem = (
                "Number overflow. Attempting to store a number with magnitude larger than "
                "supported range"
            )
        if problem is not None:
            if action == "TransactWriteItems":
                raise ValidationError(problem)
            raise MockValidationException(problem)
        return DynamoType({"N": format(result, "f")})

    return method


for _name, _operation in (("__add__", Context.add), ("__sub__", Context.subtract)):
    setattr(DynamoType, _name, _decimal_arithmetic(getattr(DynamoType, _name), _operation))


def _typed_comparison(
    original: Callable[[Any, Item | None], bool],
) -> Callable[[Any, Item | None], bool]:
    """moto's ``<``, ``<=``, ``>``, ``>=`` of a condition, false for values of two types
    while serving here.

    DynamoDB's comparisons between a string and a number are false (a filter
    skips the item); moto compares the Python values and fails with a 500.
    """

    def expr(self: Any, item: Item | None) -> bool:
        try:
            return original(self, item)
        except TypeError:
            if getattr(_THREAD, "action", None) is None:
                raise
            return False

    return expr


for _operator in (
    comparisons.OpLessThan, comparisons.OpLessThanOrEqual,
    comparisons.OpGreaterThan, comparisons.OpGreaterThanOrEqual,
):  # fmt: skip
    _operator.expr = _typed_comparison(_operator.expr)  # type: ignore[method-assign,assignment]


# The handler -------------------------------------------------------------------------


class FlatDynamoHandler(DynamoHandler):
    """moto's DynamoDB handler with flat transactions and queries, and any region name."""

    @property
    def dynamodb_backend(self) -> DynamoDBBackend:
        """The backend of this request's account and region, made for any region name.

        DynamoDB Local accepts any region (TypeScript clients often send
        ``local``); moto knows only AWS's and answers others with a 500.
        """
        regions = dynamodb_backends[self.current_account]
        if self.region not in regions:
            regions[self.region] = DynamoDBBackend(self.region, account_id=self.current_account)
        return regions[self.region]

    def call_action(self) -> Any:
        _THREAD.action = self._get_action()
        try:
            return super().call_action()
        finally:
            _THREAD.action = None
            try:
                _INDEXES.after(
                    self._get_action(), getattr(self, "params", {}), self.dynamodb_backend
                )
            except Exception:  # noqa: BLE001 - the request is answered; only the index is in doubt
                _INDEXES.by_table.clear()  # so it is dropped, and rebuilt by the next query

    def transact_write_items(self) -> Any:
        backend = self.dynamodb_backend
        snapshot = _Snapshot(backend, self.body.get("TransactItems", []))
        tables = snapshot.tables
        for table in tables:
            _install(table, "__deepcopy__", lambda memo, t=table: t,
                     lambda memo, t=table: _plain_deepcopy(t, memo))  # fmt: skip
        try:
            return super().transact_write_items()
        except BaseException:
            snapshot.restore()
            raise
        finally:
            for table in tables:
                _remove(table, "__deepcopy__")

    def update_item(self) -> Any:
        # moto applies SET before it computes ADD, in place: a refused ADD (a sum past 38
        # digits) would leave the SETs written. DynamoDB updates an item whole or not at all.
        snapshot = _Snapshot(self.dynamodb_backend, [{"Update": self.body}])
        try:
            return super().update_item()
        except BaseException:
            snapshot.restore()
            raise

    def query(self) -> Any:
        table = self.dynamodb_backend.tables.get(self.body.get("TableName", ""))
        if table is None:
            return super().query()
        _install(
            table, "query", _partition_query(table), lambda *a, **k: Table.query(table, *a, **k)
        )
        try:
            return super().query()
        finally:
            _remove(table, "query")


def create_app() -> Any:
    """A Flask app serving DynamoDB through :class:`FlatDynamoHandler`, without CORS.

    moto's ``create_backend_app`` reflects any ``Origin`` (flask-cors), which
    lets any web page read the answers; this app sends no CORS headers.
    """
    from flask import Flask
    from moto.moto_server.werkzeug_app import BackendRequest

    app = Flask("dynaledger-embedded")
    app.debug = False
    app.request_class = BackendRequest
    app.add_url_rule(
        "/",
        endpoint="dynamodb",
        view_func=convert_to_flask_response(FlatDynamoHandler.dispatch),
        methods=["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"],
        strict_slashes=False,
    )
    return app
