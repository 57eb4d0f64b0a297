"""Versioned, recorded schema migrations, created from the models.

Each revision is a module here named ``vNNNN_<what>.py`` with a ``revision``
id, the ``down_revision`` it follows, a docstring saying what it does, and an
``upgrade(ctx)`` step. Applied revisions are recorded in
``{prefix}SchemaMigrations``, one item each, claimed with a conditional write
so two migrators started at once apply every revision exactly once.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import socket
import time
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

import attrs
from botocore.exceptions import ClientError
from pynamodb.exceptions import (
    PutError,
    PynamoDBException,
    ScanError,
    TableDoesNotExist,
    TableError,
)
from pynamodb.expressions.update import Action
from pynamodb.models import Model

from dynaledger.errors import IncompatibleTable, MigrationError
from dynaledger.models import BoundModels
from dynaledger.models.schema_migration import (
    STATE_APPLIED,
    STATE_APPLYING,
    STATE_RELEASED,
    SchemaMigration,
)
from dynaledger.services._core import Context, error_code, run
from dynaledger.values import RevisionStatus, TableSettings


@attrs.frozen
class Revision:
    """One migration step.

    Attributes:
        revision: Its id, such as ``"0001"``.
        down_revision: The id it follows, or None for the first.
        description: What it does (the module docstring's first line).
        upgrade: The step itself.
    """

    revision: str
    down_revision: str | None
    description: str
    upgrade: Callable[[MigrationContext], None]


@attrs.frozen
class TableProtection:
    """What migrate turns on for each table.

    Attributes:
        point_in_time_recovery: Continuous backups, restorable to any second of 35 days.
        deletion_protection: DeleteTable refused until this is switched off.
    """

    point_in_time_recovery: bool = False
    deletion_protection: bool = False


@attrs.frozen
class MigrationContext:
    """What a revision's ``upgrade`` receives: the bound models and table helpers."""

    models: BoundModels
    wait_seconds: float = 300.0

    def ensure_table(self, model: type[Model]) -> None:
        """Create ``model``'s table with its indexes, or adopt a compatible existing one.

        Raises:
            IncompatibleTable: The table exists with another key schema.
        """
        name = model.Meta.table_name
        try:
            description = model.describe_table()
        except TableDoesNotExist:
            description = None
        if description is None:
            try:
                model.create_table(wait=True, billing_mode="PAY_PER_REQUEST")
            except TableError as error:
                if error.cause_response_code != "ResourceInUseException":
                    raise
            description = self._wait_active(model)
        schema = model._get_schema()
        expected = _key_schema(schema["key_schema"], schema["attribute_definitions"])
        actual = _key_schema(description["KeySchema"], description["AttributeDefinitions"])
        if expected != actual:
            raise IncompatibleTable(name, expected, actual)
        self._ensure_indexes(model, description)

    def _ensure_indexes(self, model: type[Model], description: dict[str, Any]) -> None:
        present = {index["IndexName"] for index in description.get("GlobalSecondaryIndexes", [])}
        schema = model._get_schema()
        for index in schema["global_secondary_indexes"]:
            if index["index_name"] in present:
                continue
            create = {
                "IndexName": index["index_name"],
                "KeySchema": index["key_schema"],
                "Projection": index["projection"],
            }
            self.models.connection.client.update_table(
                TableName=model.Meta.table_name,
                AttributeDefinitions=index["attribute_definitions"],
                GlobalSecondaryIndexUpdates=[{"Create": create}],
            )
        self._wait_active(model)

    def protect(self, model: type[Model], protection: TableProtection) -> None:
        """Turn on what ``protection`` asks for; never turn anything off."""
        client, name = self.models.connection.client, model.Meta.table_name
        if protection.point_in_time_recovery:
            client.update_continuous_backups(
                TableName=name,
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
            )
        if protection.deletion_protection:
            client.update_table(TableName=name, DeletionProtectionEnabled=True)

    def settings(self, model: type[Model]) -> TableSettings:
        """The protection a table has now."""
        client, name = self.models.connection.client, model.Meta.table_name
        table = client.describe_table(TableName=name)["Table"]
        backups = client.describe_continuous_backups(TableName=name)
        recovery = backups["ContinuousBackupsDescription"].get("PointInTimeRecoveryDescription", {})
        return TableSettings(
            table=name,
            point_in_time_recovery=recovery.get("PointInTimeRecoveryStatus") == "ENABLED",
            deletion_protection=bool(table.get("DeletionProtectionEnabled", False)),
        )

    def _wait_active(self, model: type[Model]) -> dict[str, Any]:
        deadline = time.monotonic() + self.wait_seconds
        delay = 0.05
        while True:
            description: dict[str, Any] = model.describe_table()
            indexes = description.get("GlobalSecondaryIndexes", [])
            if description.get("TableStatus") == "ACTIVE" and all(
                index.get("IndexStatus", "ACTIVE") == "ACTIVE" for index in indexes
            ):
                return description
            if time.monotonic() > deadline:
                raise MigrationError(f"table {model.Meta.table_name!r} did not become active")
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def _key_schema(key_schema: Iterable[Any], definitions: Iterable[Any]) -> str:
    """A key schema as text, hash key first: ``"userId S HASH"``."""
    types = {d["AttributeName"]: d["AttributeType"] for d in definitions}
    keys = sorted(key_schema, key=lambda k: k["KeyType"])
    return ", ".join(
        f"{k['AttributeName']} {types.get(k['AttributeName'], '?')} {k['KeyType']}" for k in keys
    )


def load_revisions(package: ModuleType | None = None) -> list[Revision]:
    """Every revision in ``package`` (this one by default), in order, checked to form one chain."""
    package = package or importlib.import_module(__name__)
    revisions = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if not info.name.startswith("v"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        doc = (module.__doc__ or info.name).strip().splitlines()[0]
        revisions.append(Revision(module.revision, module.down_revision, doc, module.upgrade))
    previous = None
    for revision in revisions:
        if revision.down_revision != previous:
            raise MigrationError(
                f"revision {revision.revision} follows {revision.down_revision}, "
                f"expected {previous}"
            )
        previous = revision.revision
    return revisions


class Migrator:
    """Applies pending revisions and reports which are applied."""

    def __init__(
        self,
        ctx: Context,
        revisions: list[Revision] | None = None,
        *,
        protection: TableProtection | None = None,
        wait_seconds: float = 300.0,
    ) -> None:
        self._ctx = ctx
        self._revisions = load_revisions() if revisions is None else revisions
        self._protection = protection or TableProtection()
        self._wait_seconds = wait_seconds
        self._migration_ctx = MigrationContext(ctx.models, wait_seconds)

    @property
    def _tables(self) -> tuple[type[Model], ...]:
        models = self._ctx.models
        return (models.user, models.transaction, models.schema_migration)

    def table_settings(self) -> list[TableSettings]:
        """Point-in-time recovery and deletion protection of each existing table."""

        def attempt() -> list[TableSettings]:
            found = []
            for model in self._tables:
                try:
                    found.append(self._migration_ctx.settings(model))
                except (PynamoDBException, ClientError) as error:
                    if error_code(error) != "ResourceNotFoundException":
                        raise
            return found

        return run(self._ctx, attempt)

    @property
    def _record(self) -> type[SchemaMigration]:
        return self._ctx.models.schema_migration

    def status(self) -> list[RevisionStatus]:
        """Every revision, with when it was applied (None while pending)."""
        applied = self._applied()
        return [
            RevisionStatus(r.revision, r.description, applied.get(r.revision))
            for r in self._revisions
        ]

    def _applied(self) -> dict[str, Any]:
        def attempt() -> dict[str, Any]:
            try:
                records = list(self._record.scan(consistent_read=True))
            except ScanError as error:
                if error_code(error) == "ResourceNotFoundException":
                    return {}  # nothing was ever migrated here
                raise
            return {r.revision: r.applied_at for r in records if r.state == STATE_APPLIED}

        return run(self._ctx, attempt)

    def upgrade(self) -> list[str]:
        """Apply every pending revision in order; return the ids this call applied."""
        self._migration_ctx.ensure_table(self._record)
        applied = [r.revision for r in self._revisions if self._apply(r)]
        run(self._ctx, self._protect_tables)
        return applied

    def _protect_tables(self) -> None:
        for model in self._tables:
            self._migration_ctx.protect(model, self._protection)

    def _apply(self, revision: Revision) -> bool:
        """Apply ``revision`` unless another migrator has; wait while one is applying it."""
        deadline = time.monotonic() + self._wait_seconds
        delay = 0.05
        while True:
            if self._claim(revision):
                try:
                    revision.upgrade(self._migration_ctx)
                except BaseException:
                    self._release(revision)
                    raise
                self._finish(revision)
                return True
            record = self._find(revision)
            if record is None or record.state == STATE_RELEASED:
                continue  # released by a migrator that failed: claim it again
            if record.state == STATE_APPLIED:
                return False
            if time.monotonic() > deadline:
                raise MigrationError(
                    f"revision {revision.revision} is still being applied by {record.applied_by} "
                    f"since {record.started_at:%Y-%m-%d %H:%M:%S}Z; if that migrator died, delete "
                    f"its item from {self._record.Meta.table_name} and run migrate again"
                )
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _find(self, revision: Revision) -> SchemaMigration | None:
        def attempt() -> SchemaMigration | None:
            try:
                return self._record.get(revision.revision, consistent_read=True)
            except self._record.DoesNotExist:
                return None

        return run(self._ctx, attempt)

    def _claim(self, revision: Revision) -> bool:
        record = self._record(
            revision.revision,
            description=revision.description,
            state=STATE_APPLYING,
            started_at=self._ctx.now(),
            applied_by=f"{socket.gethostname()}:{os.getpid()}",
        )

        def attempt() -> bool:
            try:
                free = self._record.revision.does_not_exist() | (
                    self._record.state == STATE_RELEASED
                )
                record.save(condition=free)
            except PutError as error:
                if error.cause_response_code == "ConditionalCheckFailedException":
                    return False
                raise
            return True

        return run(self._ctx, attempt)

    def _finish(self, revision: Revision) -> None:
        model = self._record
        actions: list[Action] = [
            model.state.set(STATE_APPLIED),
            model.applied_at.set(self._ctx.now()),
        ]
        run(self._ctx, lambda: model(revision.revision).update(actions=actions))

    def _release(self, revision: Revision) -> None:
        """Hand a failed revision back, so the next migrate claims it again."""
        model = self._record
        actions: list[Action] = [model.state.set(STATE_RELEASED)]
        run(self._ctx, lambda: model(revision.revision).update(actions=actions))
