"""Deploy gates: is the schema up to date, and do the tables answer?"""

from __future__ import annotations

import functools
from typing import Any

from pynamodb.exceptions import GetError, QueryError, TableDoesNotExist
from pynamodb.models import Model

from dynaledger.errors import ConfigurationError, IncompatibleTable
from dynaledger.migrations import Migrator, check_schema_of
from dynaledger.services import deployment
from dynaledger.services._core import Context, error_code, key_mismatch, run
from dynaledger.values import Readiness, SchemaCheck

#: The key ping reads: no user id or idempotency key can hold a control character.
PING_KEY = "\x1fdynaledger-ping"


def ping(ctx: Context) -> Readiness:
    """Read a key no one can have from ``Users``, ``Transactions`` and the history index:
    three requests.

    Raises:
        TableNotFound: A table is missing.
        ConfigurationError: The history index is missing, or a table is keyed by another
            attribute than this ledger's layout names.
    """
    users, transactions = ctx.models.user, ctx.models.transaction
    index = transactions.user_index.Meta.index_name

    def history_index() -> None:
        try:
            list(transactions.user_index.query(PING_KEY, limit=1))
        except QueryError as error:
            # DynamoDB: ValidationException "...does not have the specified index";
            # moto: ResourceNotFoundException "Invalid index: ...". A missing table names none.
            code = error_code(error)
            if code not in ("ValidationException", "ResourceNotFoundException") or (
                index not in str(error)
            ):
                raise
            raise ConfigurationError(
                f"table {transactions.Meta.table_name!r} has no index {index!r}; "
                "run `dynaledger migrate`",
                cause=error,
            ) from error

    for model in (users, transactions):
        run(ctx, functools.partial(_read_nothing, model))
    run(ctx, history_index)
    return Readiness((users.Meta.table_name, f"{transactions.Meta.table_name} ({index})"))


def _read_nothing(model: type[Model]) -> None:
    """Read the ping key from ``model``'s table, which proves the table keyed as the model is.

    Raises:
        ConfigurationError: DynamoDB says the key is not the table's.
    """
    try:
        model.get(PING_KEY)
    except model.DoesNotExist:
        pass
    except GetError as error:
        if not key_mismatch(error):
            raise
        (key,) = (a.attr_name for a in model.get_attributes().values() if a.is_hash_key)
        raise ConfigurationError(
            f"table {model.Meta.table_name!r} is not keyed by {key!r}, as this ledger's layout "
            "says; `dynaledger migrate --check` shows its keys",
            cause=error,
        ) from error


def check_schema(ctx: Context) -> SchemaCheck:
    """Pending revisions, every table or index that is missing or has other keys, and each
    setting of this ledger's that is not the deployment's (its writes would be refused)."""
    pending = tuple(status.revision for status in Migrator(ctx).status() if not status.applied)
    problems: list[str] = []
    models = ctx.models
    for model in (models.user, models.transaction, models.schema_migration):
        description = run(ctx, functools.partial(_describe, model))
        problems.extend(_table_problems(model, description))
    if not pending and not problems:
        current = deployment.stored(ctx)
        if current is None:
            problems.append("settings: none are stored; run `dynaledger migrate`")
        else:
            found = deployment.differences(current, deployment.configured(ctx))
            problems.extend(f"settings: {difference}" for difference in found)
    return SchemaCheck(pending, tuple(problems))


def _describe(model: type[Model]) -> dict[str, Any] | None:
    try:
        description: dict[str, Any] = model.describe_table()
    except TableDoesNotExist:
        return None
    return description


def _table_problems(model: type[Model], description: dict[str, Any] | None) -> list[str]:
    """What keeps ``model``'s table from serving: the checks migrate makes, and a missing index
    (which migrate would add)."""
    name = model.Meta.table_name
    if description is None:
        return [f"table {name!r} does not exist"]
    present = {index["IndexName"] for index in description.get("GlobalSecondaryIndexes", [])}
    problems = [
        f"table {name!r} has no index {index['index_name']!r}"
        for index in model._get_schema()["global_secondary_indexes"]
        if index["index_name"] not in present
    ]
    try:  # keys, and each index's keys and projection (history reads every attribute)
        check_schema_of(model, description)
    except IncompatibleTable as error:  # IncompatibleIndex is one
        return [str(error)]
    return problems
