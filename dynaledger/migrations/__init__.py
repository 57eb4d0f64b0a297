"""Versioned, recorded schema migrations, created from the models.

Each revision is a module here named ``vNNNN_<what>.py`` with a ``revision``
id, the ``down_revision`` it follows, a docstring saying what it does, and an
``upgrade(ctx)`` step. Applied revisions are recorded in
``{prefix}SchemaMigrations``, one item each, claimed with a conditional write
so two migrators started at once apply every revision exactly once.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import pkgutil
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any, TypeVar

import attrs
from botocore.exceptions import ClientError
from pynamodb.exceptions import (
    PutError,
    ScanError,
    TableDoesNotExist,
    TableError,
    UpdateError,
)
from pynamodb.expressions.update import Action
from pynamodb.models import Model

from dynaledger.errors import (
    IncompatibleIndex,
    IncompatibleTable,
    LedgerError,
    MigrationError,
    ServiceUnavailable,
)
from dynaledger.models import BoundModels
from dynaledger.models.schema_migration import (
    STATE_APPLIED,
    STATE_APPLYING,
    STATE_RELEASED,
    SchemaMigration,
)
from dynaledger.services._core import Context, error_code, run
from dynaledger.values import RevisionStatus, TableSettings

_T = TypeVar("_T")
_log = logging.getLogger("dynaledger.migrations")


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
    """What a revision's ``upgrade`` receives: the bound models and table helpers.

    Every request goes through the services' retry loop and error translation
    (:func:`dynaledger.services._core.run`), so a schema call fails with a
    :class:`~dynaledger.errors.LedgerError`, never a botocore or PynamoDB exception.
    """

    ctx: Context
    wait_seconds: float = 300.0

    @property
    def models(self) -> BoundModels:
        """The ledger's models, bound to its prefix and connection."""
        return self.ctx.models

    def call(self, attempt: Callable[[], _T]) -> _T:
        """Send one schema request (``attempt``) with retries and translated errors."""
        try:
            return run(self.ctx, attempt)
        except ServiceUnavailable as error:
            raise ServiceUnavailable(
                f"DynamoDB did not answer ({error.cause}); migrate is safe to run again",
                cause=error.cause,
            ) from error

    def ensure_table(self, model: type[Model]) -> None:
        """Create ``model``'s table with its indexes, or adopt a compatible existing one.

        Raises:
            IncompatibleTable: The table exists with another key schema.
            IncompatibleIndex: One of its indexes exists with another key schema or projection.
        """
        description = self._describe(model)
        if description is None:
            self.call(lambda: self._create(model))
            description = self._wait_active(model)
        check_schema_of(model, description)
        self._ensure_indexes(model)

    def check_table(self, model: type[Model], *, required: bool = True) -> None:
        """Check the table of ``model`` against it; with ``required``, it must exist (the
        revisions that make it are applied).

        Raises:
            MigrationError: ``required``, and the table does not exist (this ledger names
                other tables than the migrated ones, or it was deleted).
            IncompatibleTable: The table has another key schema (such as another key
                attribute than this ledger's layout names).
            IncompatibleIndex: One of its indexes has another key schema or projection.
        """
        description = self._describe(model)
        if description is None and not required:
            return
        if description is None:
            raise MigrationError(
                f"table {model.Meta.table_name!r} does not exist, though the revisions that "
                "make it are recorded as applied: this ledger names other tables than the "
                "migrated ones, or the table was deleted"
            )
        check_schema_of(model, description)

    def _describe(self, model: type[Model]) -> dict[str, Any] | None:
        def attempt() -> dict[str, Any] | None:
            try:
                description: dict[str, Any] = model.describe_table()
            except TableDoesNotExist:
                return None
            return description

        return self.call(attempt)

    @staticmethod
    def _create(model: type[Model]) -> None:
        try:
            model.create_table(wait=False, billing_mode="PAY_PER_REQUEST")
        except TableError as error:
            if error_code(error) != "ResourceInUseException":  # made by another migrator
                raise

    def _ensure_indexes(self, model: type[Model]) -> None:
        """Add the model's indexes that the table lacks (an adopted table may have none)."""
        schema = model._get_schema()

        def attempt() -> None:
            # Described again on each attempt: a retried create must not repeat one that landed.
            description = model.describe_table()
            present = {i["IndexName"] for i in description.get("GlobalSecondaryIndexes", [])}
            for index in schema["global_secondary_indexes"]:
                if index["index_name"] in present:
                    continue
                create = {
                    "IndexName": index["index_name"],
                    "KeySchema": index["key_schema"],
                    "Projection": index["projection"],
                }
                # The table's own definitions too: DynamoDB adds the index's to them, moto
                # replaces them with what it is sent (and then reports no type for the key).
                definitions = {
                    d["AttributeName"]: d
                    for d in [*description["AttributeDefinitions"], *index["attribute_definitions"]]
                }
                self.models.connection.client.update_table(
                    TableName=model.Meta.table_name,
                    AttributeDefinitions=list(definitions.values()),
                    GlobalSecondaryIndexUpdates=[{"Create": create}],
                )

        self.call(attempt)
        self._wait_active(model)

    def protect(self, model: type[Model], protection: TableProtection) -> None:
        """Turn on what ``protection`` asks for; never turn anything off."""
        client, name = self.models.connection.client, model.Meta.table_name
        if protection.point_in_time_recovery:
            self.call(
                lambda: client.update_continuous_backups(
                    TableName=name,
                    PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
                )
            )
        if protection.deletion_protection:
            self.call(lambda: client.update_table(TableName=name, DeletionProtectionEnabled=True))

    def settings(self, model: type[Model]) -> TableSettings | None:
        """The protection a table has now; None when the table does not exist."""
        client, name = self.models.connection.client, model.Meta.table_name

        def attempt() -> TableSettings | None:
            try:
                table = client.describe_table(TableName=name)["Table"]
                backups = client.describe_continuous_backups(TableName=name)
            except ClientError as error:
                if error_code(error) == "ResourceNotFoundException":
                    return None
                raise
            description = backups["ContinuousBackupsDescription"]
            recovery = description.get("PointInTimeRecoveryDescription", {})
            return TableSettings(
                table=name,
                point_in_time_recovery=recovery.get("PointInTimeRecoveryStatus") == "ENABLED",
                deletion_protection=bool(table.get("DeletionProtectionEnabled", False)),
            )

        return self.call(attempt)

    def _wait_active(self, model: type[Model]) -> dict[str, Any]:
        deadline = time.monotonic() + self.wait_seconds
        delay = 0.05
        while True:
            description = self._describe(model)
            if description is None:
                raise MigrationError(f"table {model.Meta.table_name!r} disappeared while created")
            indexes = description.get("GlobalSecondaryIndexes", [])
            if description.get("TableStatus") == "ACTIVE" and all(
                index.get("IndexStatus", "ACTIVE") == "ACTIVE" for index in indexes
            ):
                return description
            if time.monotonic() > deadline:
                raise MigrationError(f"table {model.Meta.table_name!r} did not become active")
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def check_schema_of(model: type[Model], description: dict[str, Any]) -> None:
    """Raise unless the described table has ``model``'s key schema and compatible indexes."""
    schema = model._get_schema()
    expected = _key_schema(schema["key_schema"], schema["attribute_definitions"])
    actual = _key_schema(description["KeySchema"], description["AttributeDefinitions"])
    if expected != actual:
        raise IncompatibleTable(model.Meta.table_name, expected, actual)
    _check_indexes(model, description)


def _key_schema(key_schema: Iterable[Any], definitions: Iterable[Any]) -> str:
    """A key schema as text, hash key first: ``"userId S HASH"``."""
    types = {d["AttributeName"]: d["AttributeType"] for d in definitions}
    keys = sorted(key_schema, key=lambda k: k["KeyType"])
    return ", ".join(
        f"{k['AttributeName']} {types.get(k['AttributeName'], '?')} {k['KeyType']}" for k in keys
    )


def _projection(projection: dict[str, Any]) -> str:
    """A projection as text: ``"ALL"``, ``"KEYS_ONLY"``, ``"INCLUDE a, b"``."""
    kind = str(projection.get("ProjectionType", "?"))
    if kind == "INCLUDE":
        return f"INCLUDE {', '.join(sorted(projection.get('NonKeyAttributes', [])))}"
    return kind


def _check_indexes(model: type[Model], description: dict[str, Any]) -> None:
    """Refuse an existing index of the model's that is keyed or projected differently.

    History and reconcile read every attribute through the index, so it must
    have the model's key schema and project ALL.

    Raises:
        IncompatibleIndex: naming the table, the index and each difference.
    """
    schema = model._get_schema()
    definitions = schema["attribute_definitions"]
    present = {i["IndexName"]: i for i in description.get("GlobalSecondaryIndexes", [])}
    for wanted in schema["global_secondary_indexes"]:
        found = present.get(wanted["index_name"])
        if found is None:
            continue  # added by _ensure_indexes
        expected = (
            _key_schema(wanted["key_schema"], definitions),
            _projection(wanted["projection"]),
        )
        actual = (
            _key_schema(found["KeySchema"], description["AttributeDefinitions"]),
            _projection(found.get("Projection", {})),
        )
        differences = [
            f"{what} {have}, but the model expects {want}"
            for what, have, want in zip(("key schema", "projection"), actual, expected, strict=True)
            if have != want
        ]
        if differences:
            raise IncompatibleIndex(
                model.Meta.table_name,
                wanted["index_name"],
                f"{expected[0]}, projection {expected[1]}",
                f"{actual[0]}, projection {actual[1]}",
                differences,
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
    """Applies pending revisions, reports which are applied, and frees a dead migrator's claim."""

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
        #: With every revision of the package applied, every table of the models must exist.
        self._complete = revisions is None
        self._protection = protection or TableProtection()
        self._wait_seconds = wait_seconds
        self._schema = MigrationContext(ctx, wait_seconds)
        #: Marks this migrator's claims: a claim whose reply was lost is recognised on retry.
        self._token = uuid.uuid4().hex
        self._identity = f"{socket.gethostname()}:{os.getpid()}"

    @property
    def _tables(self) -> tuple[type[Model], ...]:
        models = self._ctx.models
        return (models.user, models.transaction, models.schema_migration)

    @property
    def _record(self) -> type[SchemaMigration]:
        return self._ctx.models.schema_migration

    def table_settings(self) -> list[TableSettings]:
        """Point-in-time recovery and deletion protection of each existing table."""
        found = (self._schema.settings(model) for model in self._tables)
        return [settings for settings in found if settings is not None]

    def status(self) -> list[RevisionStatus]:
        """Every revision, with when it was applied (None while pending) or who is applying it."""
        records = self._records()
        statuses = []
        for revision in self._revisions:
            record = records.get(revision.revision)
            applied = record is not None and record.state == STATE_APPLIED
            claimed = record is not None and record.state == STATE_APPLYING
            statuses.append(
                RevisionStatus(
                    revision.revision,
                    revision.description,
                    record.applied_at if record is not None and applied else None,
                    claimed_by=record.applied_by if record is not None and claimed else None,
                    claimed_at=record.started_at if record is not None and claimed else None,
                )
            )
        return statuses

    def _records(self) -> dict[str, SchemaMigration]:
        def attempt() -> dict[str, SchemaMigration]:
            try:
                records = list(self._record.scan(consistent_read=True))
            except ScanError as error:
                if error_code(error) == "ResourceNotFoundException":
                    return {}  # nothing was ever migrated here
                raise
            return {r.revision: r for r in records}

        return self._schema.call(attempt)

    def upgrade(self) -> list[str]:
        """Apply every pending revision in order; return the ids this call applied.

        Every table that exists is checked first, so that a ledger of another layout
        (or a hand-made table that does not fit) is stopped before anything is written.
        """
        for model in self._tables:
            self._schema.check_table(model, required=False)
        self._schema.ensure_table(self._record)
        applied = [r.revision for r in self._revisions if self._apply(r)]
        for model in self._tables:
            # Revisions applied before (by a ledger of another layout, perhaps) created or
            # adopted the tables; this ledger's models must still fit them.
            self._schema.check_table(model, required=self._complete)
            self._schema.protect(model, self._protection)
        return applied

    def release(self, revision_id: str) -> RevisionStatus:
        """Free the claim a migrator that died left on ``revision_id``; return what was freed.

        The next migrate applies the revision again (its steps are idempotent:
        tables that exist are adopted). Only for a migrator that is gone: one
        still running would then apply the revision alongside the next.

        Raises:
            MigrationError: The revision is unknown, applied, or not claimed.
        """
        known = {r.revision: r for r in self._revisions}
        revision = known.get(revision_id)
        if revision is None:
            raise MigrationError(
                f"unknown revision {revision_id!r}; the revisions are {', '.join(known)}"
            )
        record = self._find(revision)
        if record is None or record.state == STATE_RELEASED:
            raise MigrationError(f"revision {revision_id} is not claimed: nothing to release")
        if record.state == STATE_APPLIED:
            raise MigrationError(f"revision {revision_id} is applied: nothing to release")
        model = self._record
        token = record.claim_token
        same_claim = (model.state == STATE_APPLYING) & (
            model.claim_token == token if token else model.claim_token.does_not_exist()
        )
        actions: list[Action] = [model.state.set(STATE_RELEASED)]

        def attempt() -> None:
            try:
                model(revision_id).update(actions=actions, condition=same_claim)
            except UpdateError as error:
                if error_code(error) != "ConditionalCheckFailedException":
                    raise
                current = self._find(revision)
                if (
                    current is None
                    or current.state != STATE_RELEASED
                    or current.claim_token != token
                ):
                    raise MigrationError(
                        f"revision {revision_id} changed while being released; "
                        "see `dynaledger migrate --status`"
                    ) from None
                # else: our own release landed and its reply was lost

        self._schema.call(attempt)
        return RevisionStatus(
            revision.revision,
            revision.description,
            None,
            claimed_by=record.applied_by,
            claimed_at=record.started_at,
        )

    def _apply(self, revision: Revision) -> bool:
        """Apply ``revision`` unless another migrator has; wait while one is applying it."""
        deadline = time.monotonic() + self._wait_seconds
        delay = 0.05
        while True:
            if self._claim(revision):
                try:
                    revision.upgrade(self._schema)
                except BaseException:
                    self._release_own(revision)
                    raise
                self._finish(revision)
                _log.info("applied revision %s: %s", revision.revision, revision.description)
                return True
            record = self._find(revision)
            if record is None or record.state == STATE_RELEASED:
                continue  # released by a migrator that failed: claim it again
            if record.state == STATE_APPLIED:
                return False
            if time.monotonic() > deadline:
                started = record.started_at
                since = f" since {started:%Y-%m-%d %H:%M:%S}Z" if started is not None else ""
                raise MigrationError(
                    f"revision {revision.revision} is still being applied by {record.applied_by}"
                    f"{since}; if that migrator is gone, "
                    f"run `dynaledger migrate --release {revision.revision}`, then migrate again"
                )
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _find(self, revision: Revision) -> SchemaMigration | None:
        def attempt() -> SchemaMigration | None:
            try:
                return self._record.get(revision.revision, consistent_read=True)
            except self._record.DoesNotExist:
                return None

        return self._schema.call(attempt)

    def _claim(self, revision: Revision) -> bool:
        """Claim ``revision`` for this migrator: True when it is now ours to apply."""
        model = self._record
        record = model(
            revision.revision,
            description=revision.description,
            state=STATE_APPLYING,
            started_at=self._ctx.now(),
            applied_by=self._identity,
            claim_token=self._token,
        )
        # Free, released, or already ours (a retry after the reply to our claim was lost).
        free = (
            model.revision.does_not_exist()
            | (model.state == STATE_RELEASED)
            | ((model.state == STATE_APPLYING) & (model.claim_token == self._token))
        )

        def attempt() -> bool:
            try:
                record.save(condition=free)
            except PutError as error:
                if error_code(error) == "ConditionalCheckFailedException":
                    return False
                raise
            return True

        return self._schema.call(attempt)

    def _finish(self, revision: Revision) -> None:
        model = self._record
        actions: list[Action] = [
            model.state.set(STATE_APPLIED),
            model.applied_at.set(self._ctx.now()),
        ]
        self._schema.call(lambda: model(revision.revision).update(actions=actions))

    def _release_own(self, revision: Revision) -> None:
        """Hand a failed revision back, so the next migrate claims it again.

        Only this migrator's own claim is released. If even that fails (the
        service is gone), the claim stays and ``migrate --release`` frees it;
        the caller sees the original failure either way.
        """
        model = self._record
        actions: list[Action] = [model.state.set(STATE_RELEASED)]
        ours = model.claim_token == self._token

        def attempt() -> None:
            try:
                model(revision.revision).update(actions=actions, condition=ours)
            except UpdateError as error:
                if error_code(error) != "ConditionalCheckFailedException":
                    raise  # else: released by an operator already

        with contextlib.suppress(LedgerError):
            self._schema.call(attempt)
