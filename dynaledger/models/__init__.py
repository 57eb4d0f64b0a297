"""PynamoDB models of the ledger's tables, and their binding to one configuration.

The model classes here name the tables as the TypeScript service does
(``Users``, ``Transactions``). :func:`bind_models` derives subclasses whose
table names carry a prefix and whose requests go to one endpoint, so two
ledgers in one process never see each other's tables.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from typing import Any, TypeVar, cast

import attrs
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.attributes import UnicodeAttribute
from pynamodb.connection import Connection
from pynamodb.constants import (
    CREATE_TABLE,
    DELETE_TABLE,
    DESCRIBE_TABLE,
    LIST_TABLES,
    NULL,
    RETURN_CONSUMED_CAPACITY,
    TOTAL,
    TRANSACT_CONDITION_CHECK,
    TRANSACT_DELETE,
    TRANSACT_ITEMS,
    TRANSACT_PUT,
    TRANSACT_UPDATE,
    TRANSACT_WRITE_ITEMS,
    UPDATE_TABLE,
    UPDATE_TIME_TO_LIVE,
)
from pynamodb.exceptions import TransactWriteError
from pynamodb.models import Model
from pynamodb.signals import post_dynamodb_send, pre_dynamodb_send

from dynaledger._calls import install_deadline_timeouts
from dynaledger.errors import ConfigurationError
from dynaledger.models.attributes import DecimalAttribute, ISODateTimeAttribute
from dynaledger.models.deployment import DeploymentSettings
from dynaledger.models.layout import TableLayout
from dynaledger.models.schema_migration import SchemaMigration
from dynaledger.models.transaction import Transaction
from dynaledger.models.user import User

_M = TypeVar("_M", bound=Model)


@attrs.frozen
class ConnectionSettings:
    """Where and how a bound set of models talks to DynamoDB.

    Attributes:
        endpoint_url: The DynamoDB endpoint, or None for AWS's regional endpoint.
        region: The AWS region, or None for botocore's own lookup.
        table_prefix: Prepended to every table name.
        credentials: ``(access_key_id, secret_access_key)``, or None for botocore's chain.
        connect_timeout: Seconds to wait for a connection.
        read_timeout: Seconds to wait for a reply.
        max_pool_connections: HTTP connections kept open for reuse (and so,
            without waiting, the requests in flight at once).
        botocore_config: More botocore client settings, merged over these
            (except ``retries``: the services retry, botocore sends each request once).
    """

    endpoint_url: str | None
    region: str | None
    table_prefix: str = ""
    credentials: tuple[str, str] | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    max_pool_connections: int = 50
    botocore_config: Config | None = None


@attrs.frozen
class BoundModels:
    """The ledger's model classes bound to one configuration, sharing one connection.

    Attributes:
        user: The ``{prefix}Users`` model.
        transaction: The ``{prefix}Transactions`` model.
        schema_migration: The ``{prefix}SchemaMigrations`` model.
        deployment: The deployment's settings, one item of the migrations table.
        connection: The single PynamoDB connection (one botocore client) they all use.
    """

    user: type[User]
    transaction: type[Transaction]
    schema_migration: type[SchemaMigration]
    deployment: type[DeploymentSettings]
    connection: Connection


def bind_models(settings: ConnectionSettings, layout: TableLayout | None = None) -> BoundModels:
    """Derive the ledger's models for one configuration and table layout.

    Retries are left to the services (one policy, with jitter, that knows
    which failures are safe to retry), so botocore is told to send each
    request once.
    """
    access_key, secret_key = settings.credentials or (None, None)
    connection = _Connection(
        settings.botocore_config,
        region=settings.region,
        host=settings.endpoint_url,
        connect_timeout_seconds=settings.connect_timeout,
        read_timeout_seconds=settings.read_timeout,
        max_retry_attempts=0,
        retry_configuration={"total_max_attempts": 1, "mode": "standard"},
        max_pool_connections=settings.max_pool_connections,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
    )
    # Create the client now: PynamoDB builds it lazily and without a lock.
    try:
        _ = connection.client
    except BotoCoreError as error:  # such as half-configured credentials
        raise ConfigurationError(
            f"cannot configure the DynamoDB client: {error}", cause=error
        ) from error
    layout = layout or TableLayout()
    layout.check_prefix(settings.table_prefix)
    key = layout.idempotency_key_attribute
    return BoundModels(
        user=_bind(User, layout.users_table, settings, connection),
        transaction=_bind(
            Transaction,
            layout.transactions_table,
            settings,
            connection,
            # The records' key may go by another service's name, such as idempotentKey.
            idempotency_key=UnicodeAttribute(hash_key=True, attr_name=key),
        ),
        schema_migration=_bind(SchemaMigration, layout.migrations_table, settings, connection),
        deployment=_bind(DeploymentSettings, layout.migrations_table, settings, connection),
        connection=connection,
    )


#: botocore sends each request once; the services' retry policy does the rest.
_ONE_ATTEMPT = {"total_max_attempts": 1, "mode": "standard"}


def build(model: type[_M], values: dict[str, Any]) -> _M:
    """``model(**values)`` for a new item, without PynamoDB's per-attribute setters.

    dynaledger's models declare no defaults and no discriminator, so a new
    instance is exactly its values that are not None, kept in
    ``attribute_values``, the storage PynamoDB's attribute descriptors read and
    write. ``values`` becomes the instance's own (a copy when it holds a None).
    Every movement builds its records; this costs a fraction of the constructor
    (``tests/test_expressions.py`` checks the two give equal items).

    Raises:
        ValueError: A name is not an attribute of ``model``.
    """
    attributes = model.get_attributes()
    if not values.keys() <= attributes.keys():
        unknown = values.keys() - attributes.keys()
        raise ValueError(f"{model.__name__} has no attribute {sorted(unknown)[0]!r}")
    instance = model.__new__(model)
    for value in values.values():
        # ``is``, not ``in``: ``Decimal == None`` asks the numbers ABCs (slow when cold).
        if value is None:
            values = {name: given for name, given in values.items() if given is not None}
            break
    instance.attribute_values = values
    return instance


def load(model: type[_M], item: dict[str, Any]) -> _M:
    """``model.from_raw_data(item)``, without PynamoDB's per-attribute setters.

    Reads each attribute as PynamoDB does (a value of the wrong DynamoDB type
    raises :class:`~pynamodb.exceptions.AttributeDeserializationError`, a bad
    value the attribute's own error) and keeps the values as :func:`build` does.
    """
    values: dict[str, Any] = {}
    for name, attr_name, attribute in _fields(model):
        typed = item.get(attr_name)
        if typed and NULL not in typed:
            values[name] = attribute.deserialize(attribute.get_value(typed))
    instance = model.__new__(model)
    instance.attribute_values = values
    return instance


def _fields(model: type[Model]) -> tuple[tuple[str, str, Any], ...]:
    """``(python name, DynamoDB name, attribute)`` of each of ``model``'s attributes."""
    found = _FIELDS.get(model)
    if found is None:
        found = tuple(
            (name, attribute.attr_name, attribute)
            for name, attribute in model.get_attributes().items()
        )
        _FIELDS[model] = found
    return found


#: :func:`_fields` of each model, worked out once: PynamoDB looks names up per access.
#: Weak: every ledger binds models of its own.
_FIELDS: weakref.WeakKeyDictionary[type[Model], tuple[tuple[str, str, Any], ...]] = (
    weakref.WeakKeyDictionary()
)


def signals_heard() -> bool:
    """True when someone listens to PynamoDB's request signals (they may count requests)."""
    return bool(
        getattr(pre_dynamodb_send, "receivers", None)
        or getattr(post_dynamodb_send, "receivers", None)
    )


#: PynamoDB's connection log, and the operations its ``dispatch`` sends as they are.
_PYNAMODB_LOG = logging.getLogger("pynamodb.connection.base")
_TABLE_OPERATIONS = frozenset(
    {DESCRIBE_TABLE, LIST_TABLES, UPDATE_TABLE, UPDATE_TIME_TO_LIVE, DELETE_TABLE, CREATE_TABLE}
)


class _Connection(Connection):
    """PynamoDB's connection, whose client merges a botocore ``Config`` and honours deadlines."""

    def __init__(self, botocore_config: Config | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._botocore_config = botocore_config

    @property
    def client(self) -> Any:
        """The botocore client, built as PynamoDB builds it, with our additions."""
        signer = self._client._request_signer if self._client else None
        # PynamoDB rebuilds a client that has no credentials (they may appear later).
        if self._client is None or (signer is not None and not signer._credentials):
            config = Config(
                parameter_validation=False,
                connect_timeout=self._connect_timeout_seconds,
                read_timeout=self._read_timeout_seconds,
                max_pool_connections=self._max_pool_connections,
                retries=_ONE_ATTEMPT,
            )
            if self._botocore_config is not None:
                config = config.merge(self._botocore_config).merge(Config(retries=_ONE_ATTEMPT))
            client = self.session.create_client(
                "dynamodb", self.region, endpoint_url=self.host, config=config
            )
            client.meta.events.register_first("before-send.*.*", self._before_send)
            install_deadline_timeouts(client)
            self._client = client
        return self._client

    def dispatch(self, operation_name: str, operation_kwargs: dict[str, Any]) -> dict[str, Any]:
        """Send one request: PynamoDB's ``dispatch``, without its signals while no one hears.

        PynamoDB draws a UUID and sends two signals per request for listeners to
        ``pre_dynamodb_send`` and ``post_dynamodb_send``, and logs each request at
        debug level. With neither a listener nor that log, the request is sent
        as ``dispatch`` would send it (consumed capacity asked for unless given)
        without them.
        """
        if signals_heard() or _PYNAMODB_LOG.isEnabledFor(logging.DEBUG):
            return super().dispatch(operation_name, operation_kwargs)
        if operation_name not in _TABLE_OPERATIONS and RETURN_CONSUMED_CAPACITY not in (
            operation_kwargs
        ):
            operation_kwargs.update(self.get_consumed_capacity_map(TOTAL))
        return self._make_api_call(operation_name, operation_kwargs)

    def transact_write_items(  # noqa: PLR0917 - PynamoDB's signature
        self,
        condition_check_items: Sequence[dict[str, Any]],
        delete_items: Sequence[dict[str, Any]],
        put_items: Sequence[dict[str, Any]],
        update_items: Sequence[dict[str, Any]],
        client_request_token: str | None = None,
        return_consumed_capacity: str | None = None,
        return_item_collection_metrics: str | None = None,
    ) -> dict[str, Any]:
        """PynamoDB's ``transact_write_items``: the same request, sent the same way, the
        same ``TransactWriteError``; its items are listed in loops, not four generators.

        ``TransactWrite`` commits every movement through this method.
        """
        items: list[dict[str, Any]] = []
        for kind, given in (
            (TRANSACT_CONDITION_CHECK, condition_check_items),
            (TRANSACT_DELETE, delete_items),
            (TRANSACT_PUT, put_items),
            (TRANSACT_UPDATE, update_items),
        ):
            for item in given:
                items.append({kind: item})
        operation_kwargs = self._get_transact_operation_kwargs(
            client_request_token=client_request_token,
            return_consumed_capacity=return_consumed_capacity,
            return_item_collection_metrics=return_item_collection_metrics,
        )
        operation_kwargs[TRANSACT_ITEMS] = items
        try:
            return self.dispatch(TRANSACT_WRITE_ITEMS, operation_kwargs)
        except (BotoCoreError, ClientError) as error:
            raise TransactWriteError("Failed to write transaction items", error) from error

    def close(self) -> None:
        """Close the client's pooled connections."""
        if self._client is not None:
            self._client.close()


def _bind(
    model: type[_M],
    table_name: str,
    settings: ConnectionSettings,
    connection: Connection,
    **attributes: UnicodeAttribute,
) -> type[_M]:
    access_key, secret_key = settings.credentials or (None, None)
    meta = type(
        "Meta",
        (),
        {
            "table_name": settings.table_prefix + table_name,
            "billing_mode": "PAY_PER_REQUEST",
            "region": settings.region,
            "host": settings.endpoint_url,
            "connect_timeout_seconds": settings.connect_timeout,
            "read_timeout_seconds": settings.read_timeout,
            "max_retry_attempts": 0,
            "max_pool_connections": settings.max_pool_connections,
            "aws_access_key_id": access_key,
            "aws_secret_access_key": secret_key,
        },
    )
    bound = cast(
        "type[_M]",
        type(
            model.__name__,
            (model,),
            {"Meta": meta, "_connection": None, "__module__": model.__module__, **attributes},
        ),
    )
    # Point the bound model's table connection at the shared connection, so the
    # whole ledger uses one botocore client and one connection pool.
    table_connection = bound._get_connection()
    meta_table = table_connection.get_meta_table()
    if meta_table.table_name not in connection._tables:  # two models share the migrations table
        connection.add_meta_table(meta_table)
    table_connection.connection = connection
    return bound


__all__ = [
    "BoundModels",
    "ConnectionSettings",
    "DecimalAttribute",
    "DeploymentSettings",
    "ISODateTimeAttribute",
    "SchemaMigration",
    "TableLayout",
    "Transaction",
    "User",
    "bind_models",
    "build",
    "load",
]
