"""Tables, migrations, deployment settings, readiness and seeds."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlparse

from dynaledger import readiness, seeds, values
from dynaledger._facade.base import Facade
from dynaledger.errors import TableNotFound, ValidationError
from dynaledger.migrations import Migrator, TableProtection
from dynaledger.services import deployment


class SchemaOperations(Facade):
    """The ledger's schema operations: migrations, deployment settings, readiness, seeds."""

    @property
    def is_aws(self) -> bool:
        """True when requests go to AWS DynamoDB itself rather than a local or other server.

        With no ``endpoint_url``, the one botocore resolved: its own default, or one
        configured outside dynaledger (``AWS_ENDPOINT_URL_DYNAMODB``, the AWS config file).
        """
        endpoint = (
            self.settings.endpoint_url or self._ctx.models.connection.client.meta.endpoint_url
        )
        host = urlparse(endpoint).hostname or ""
        return host.endswith((".amazonaws.com", ".amazonaws.com.cn"))

    def migrate(
        self,
        *,
        point_in_time_recovery: bool | None = None,
        deletion_protection: bool | None = None,
    ) -> list[str]:
        """Apply pending migrations; return the revision ids this call applied.

        Point-in-time recovery and deletion protection are turned on for every
        table when asked, by default on AWS and not elsewhere. Migrate never
        turns either off. The deadline does not apply: tables take their time.
        The first migrate records this ledger's opening
        balance, default currency and assets as the deployment's settings.

        Raises:
            SettingsMismatch: The deployment's stored settings are other than
                this ledger's (see :meth:`apply_settings`).
        """
        for name, flag in (
            ("point_in_time_recovery", point_in_time_recovery),
            ("deletion_protection", deletion_protection),
        ):
            if flag is not None and not isinstance(flag, bool):
                raise ValidationError(name, f"must be True, False or None, not {flag!r}")
        protection = TableProtection(
            point_in_time_recovery=self.is_aws if point_in_time_recovery is None
            else point_in_time_recovery,
            deletion_protection=self.is_aws if deletion_protection is None
            else deletion_protection,
        )  # fmt: skip
        with self._call("migrate", write=True, bounded=False):
            applied = Migrator(self._ctx, protection=protection).upgrade()
            deployment.record(self._ctx)
            return applied

    def deployment_settings(self) -> values.DeploymentSettings | None:
        """The deployment's stored settings (None before the first migrate, also when its
        migrations table does not exist yet)."""
        with self._call("deployment_settings", bounded=False):
            try:
                return deployment.stored(self._ctx)
            except TableNotFound:  # the one table it reads: the migrations table
                return None

    def apply_settings(self) -> values.DeploymentSettings:
        """Make this ledger's opening balance, default currency and assets the deployment's.

        Raises:
            ValidationError: An account depends on a setting this would change
                (it holds an asset whose decimals change, or relies on the
                default currency or opening balance).
        """
        with self._call("apply_settings", write=True, bounded=False):
            return deployment.apply(self._ctx)

    def migration_status(self) -> list[values.RevisionStatus]:
        """Every migration revision and when it was applied."""
        with self._call("migration_status", bounded=False):
            return Migrator(self._ctx).status()

    def check_schema(self) -> values.SchemaCheck:
        """Pending revisions and tables that are missing or incompatible, for deploy gates.

        Sends a Scan of the migration records and a DescribeTable per table;
        writes nothing. ``dynaledger migrate --check`` exits non-zero unless
        the result is ``ok``.
        """
        with self._call("check_schema", bounded=False):
            return readiness.check_schema(self._ctx)

    def ping(self) -> values.Readiness:
        """Prove the runtime tables exist, answer and are keyed as the layout says.

        A GetItem of a key no one can have on ``Users`` and on ``Transactions``,
        and a one-item Query of the history index (which proves it exists): three
        requests, with the permissions the operations need, no more.

        Raises:
            TableNotFound: A table is missing.
            ConfigurationError: The history index is missing, or a table is keyed by
                another attribute than the layout names.
            ServiceUnavailable: DynamoDB did not answer (within the deadline).
        """
        with self._call("ping"):
            return readiness.ping(self._ctx)

    def release_migration(self, revision: str) -> values.RevisionStatus:
        """Free the claim a migrator that died left on ``revision``; return what was freed.

        Use it only when the migrator named by ``migration_status()`` is gone;
        the next ``migrate`` applies the revision again.
        """
        with self._call("release_migration", write=True, bounded=False):
            return Migrator(self._ctx).release(revision)

    def table_settings(self) -> list[values.TableSettings]:
        """Point-in-time recovery and deletion protection of each existing table."""
        with self._call("table_settings", bounded=False):
            return Migrator(self._ctx).table_settings()

    def seed(self) -> values.SeedReport:
        """Create the test users of ``dynaledger/seeds/users.json`` that do not exist yet."""
        with self._call("seed", write=True, bounded=False):
            return seeds.seed(self._ctx)

    def generate_users(
        self, count: int, *, progress: Callable[[int, int], None] | None = None
    ) -> values.SeedReport:
        """Write ``count`` synthetic users in batches, skipping those that exist."""
        with self._call("generate_users", write=True, bounded=False):
            return seeds.generate(self._ctx, count, progress=progress)
