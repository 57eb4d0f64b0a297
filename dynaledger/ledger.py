"""The :class:`Ledger`: one configuration, and the operations on it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from decimal import Decimal
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlparse

from botocore.client import BaseClient
from botocore.config import Config

from dynaledger import _calls, readiness, seeds, services, settings, values
from dynaledger.errors import ConfigurationError, ValidationError
from dynaledger.migrations import Migrator, TableProtection
from dynaledger.models import ConnectionSettings, TableLayout, bind_models
from dynaledger.money import Currencies, parse_assets
from dynaledger.services import Context, RetryPolicy, RetryStats, deployment
from dynaledger.values import EntryType

#: What ``amount`` accepts: a float only when its shortest repr fits the currency.
Amount = Decimal | int | float | str
#: What ``type`` accepts.
EntryTypeLike = EntryType | Literal["credit", "debit"]


class Ledger:
    """User balances in DynamoDB, moved by atomic, idempotent, never-overdrawn transactions.

    One ledger is safe to share between threads: it holds one botocore client
    and one connection pool, and every call keeps its state to itself. Close
    it (or use it as a context manager) to close its connections.

    Args:
        endpoint_url: A DynamoDB endpoint, an ``http://`` or ``https://`` URL
            with a host (anything else is a ``ValidationError``); None means
            AWS's regional endpoint, reached with botocore's normal credential chain.
        region: The AWS region; None means botocore's own lookup (or
            ``us-east-1`` for a local endpoint).
        table_prefix: Prepended to every table name, to keep environments apart.
        opening_balance: What an account with no stored balance holds.
        default_currency: The currency of an account with none stored: an
            ISO 4217 code or a declared asset.
        assets: Assets beyond ISO 4217 and their decimals, such as
            ``{"BTC": 8, "ETH": 18, "USDT": 6, "CHIPS": 0}``.
        layout: The names of the tables and of the records' key, to share
            tables with another service; the defaults are dynaledger's own.
        retry: How contention and outages are retried.
        read_timeout: Seconds to wait for a reply before the attempt counts as failed.
        connect_timeout: Seconds to wait for a connection before the attempt counts as failed.
        deadline: Seconds one call (``create_user``, ``get_user_balance``,
            ``transact``, ``transfer``, ``history``, ``ping``, ``hold``,
            ``capture``, ``void``, ``get_hold``, ``holds``, ``refund``, ``post``) may take over all
            its attempts and backoffs; each attempt's timeouts shrink to fit.
            None: only the retry budget bounds a call.
        max_pool_connections: HTTP connections kept open for reuse; more
            threads than this still work, but open connections they then close.
        botocore_config: More botocore client settings (proxies, user agent,
            TCP keep-alive...), merged over the ones above; ``retries`` is
            ignored, since the ledger retries itself.
        clock: Returns the current time as an aware datetime; None means the
            system clock. It decides when holds expire (tests move it).
    """

    def __init__(
        self,
        endpoint_url: str | None = None,
        region: str | None = None,
        table_prefix: str = "",
        opening_balance: Decimal | int | str = Decimal("100"),
        default_currency: str = "USD",
        *,
        assets: Mapping[str, int] | None = None,
        layout: TableLayout | None = None,
        retry: RetryPolicy | None = None,
        read_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        deadline: float | None = None,
        max_pool_connections: int = 50,
        botocore_config: Config | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        currencies = Currencies(dict(assets or {}))
        currency = currencies.validate(default_currency, "default_currency")
        settings.check_endpoint(endpoint_url)
        settings.check_arguments(
            read_timeout=read_timeout,
            connect_timeout=connect_timeout,
            deadline=deadline,
            max_pool_connections=max_pool_connections,
            botocore_config=botocore_config,
            retry=retry,
        )
        local = settings.is_loopback(endpoint_url)
        has_credentials = any(os.environ.get(name) for name in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE"))
        self.settings = ConnectionSettings(
            endpoint_url=endpoint_url,
            region=region or (settings.DEFAULT_LOCAL_REGION if local else None),
            table_prefix=table_prefix,
            credentials=settings.PLACEHOLDER_CREDENTIALS if local and not has_credentials else None,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=max_pool_connections,
            botocore_config=botocore_config,
        )
        self._ctx = Context(
            models=bind_models(self.settings, layout),
            opening_balance=currencies.parse_balance(opening_balance, currency, "opening_balance"),
            currencies=currencies,
            default_currency=currency,
            retry=retry or RetryPolicy(),
            deadline=deadline,
            clock=clock,
        )
        self._closed = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Ledger:
        """A ledger configured from the environment.

        Reads the variables of :data:`dynaledger.settings.SETTINGS` (the
        README's settings table): the endpoint, region, table prefix, opening
        balance, default currency, retry budget, timeouts, deadline and pool
        size, ``DYNALEDGER_ASSETS`` (``BTC:8,ETH:18``) and the layout variables
        (``DYNALEDGER_USERS_TABLE``, ``DYNALEDGER_TRANSACTIONS_TABLE``,
        ``DYNALEDGER_MIGRATIONS_TABLE``, ``DYNALEDGER_IDEMPOTENCY_KEY_ATTRIBUTE``).
        Keyword arguments win over all of them.

        Raises:
            ValidationError: A variable holds a bad value; the error names the variable.
        """
        env = os.environ if environ is None else environ
        arguments, sources = settings.from_environment(env)
        retry_fields = arguments.pop("retry", None)
        if retry_fields:
            arguments["retry"] = RetryPolicy(**retry_fields)
        if "layout" not in overrides:
            try:
                arguments["layout"] = settings.layout_from_env(env)
            except ValidationError as error:
                variable = settings.LAYOUT_VARIABLES.get(error.field)
                if variable is None:
                    raise
                raise ValidationError(variable, error.rule) from error
        if "assets" not in overrides:
            arguments["assets"] = parse_assets(
                env.get("DYNALEDGER_ASSETS", ""), "DYNALEDGER_ASSETS"
            )
        arguments.update(overrides)
        try:
            return cls(**arguments)
        except ValidationError as error:
            variable = None if error.field in overrides else sources.get(error.field)
            if variable is None:
                raise
            raise ValidationError(variable, error.rule) from error

    def close(self) -> None:
        """Close the ledger's connections; calls made afterwards raise ``ConfigurationError``."""
        self._closed = True
        self._ctx.models.connection.close()  # type: ignore[attr-defined]

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _call(
        self,
        operation: str,
        *,
        idempotency_key: str | None = None,
        write: bool = False,
        bounded: bool = True,
    ) -> AbstractContextManager[_calls.Call]:
        """One call of ``operation``: its name and key for logs and errors, and its deadline."""
        if self._closed:
            raise ConfigurationError("this Ledger was closed")
        return _calls.scope(
            operation,
            idempotency_key=idempotency_key,
            write=write,
            seconds=self._ctx.deadline if bounded else None,
        )

    def __repr__(self) -> str:
        endpoint = self.settings.endpoint_url or "aws"
        return f"Ledger(endpoint_url={endpoint!r}, table_prefix={self.settings.table_prefix!r})"

    @property
    def opening_balance(self) -> Decimal:
        """What an account with no stored balance holds."""
        return self._ctx.opening_balance

    @property
    def default_currency(self) -> str:
        """The currency of an account with none stored."""
        return self._ctx.default_currency

    @property
    def assets(self) -> dict[str, int]:
        """The assets this ledger declares beyond ISO 4217, with their decimals."""
        return dict(self._ctx.currencies.assets)

    @property
    def layout(self) -> TableLayout:
        """The names of the tables (before the prefix) and of the records' key."""
        models = self._ctx.models
        prefix = len(self.settings.table_prefix)
        return TableLayout(
            users_table=models.user.Meta.table_name[prefix:],
            transactions_table=models.transaction.Meta.table_name[prefix:],
            migrations_table=models.schema_migration.Meta.table_name[prefix:],
            idempotency_key_attribute=models.transaction.idempotency_key.attr_name,
        )

    @property
    def table_names(self) -> tuple[str, str, str]:
        """The names of the Users, Transactions and SchemaMigrations tables."""
        models = self._ctx.models
        return (
            models.user.Meta.table_name,
            models.transaction.Meta.table_name,
            models.schema_migration.Meta.table_name,
        )

    @property
    def deadline(self) -> float | None:
        """Seconds one call may take over all its attempts and backoffs, or None."""
        return self._ctx.deadline

    @property
    def stats(self) -> RetryStats:
        """Counters of the attempts, retries (by kind) and exhausted calls of this ledger.

        Safe to read from any thread, for metrics; the ``dynaledger.retry``
        logger reports each of these events as it happens.
        """
        return self._ctx.stats

    @property
    def botocore_client(self) -> BaseClient:
        """The one botocore client every request goes through, for event hooks and metrics."""
        return self._ctx.models.connection.client

    # Schema -----------------------------------------------------------------

    @property
    def is_aws(self) -> bool:
        """True when requests go to AWS DynamoDB itself rather than a local or other server."""
        endpoint = self.settings.endpoint_url
        if endpoint is None:
            return True
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
        """The deployment's stored settings (None before the first migrate)."""
        with self._call("deployment_settings", bounded=False):
            return deployment.stored(self._ctx)

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
        """Prove the runtime tables exist and answer: one read request per table.

        A GetItem of a key no user can have on ``Users``, a one-item Query of
        the history index on ``Transactions`` (which proves the index too);
        the same permissions as the operations need, no more.

        Raises:
            TableNotFound: A table (or the history index) is missing.
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

    # Accounts ---------------------------------------------------------------

    def create_user(
        self,
        user_id: str,
        *,
        currency: str | None = None,
        balance: Amount | None = None,
        credit_limit: Amount = 0,
    ) -> values.User:
        """Create an account; with no ``balance`` it starts on the opening balance.

        ``credit_limit``: how far below zero it may go (0, the default: not at all).
        """
        with self._call("create_user", write=True):
            return services.create_user(
                self._ctx, user_id, currency=currency, balance=balance, credit_limit=credit_limit
            )

    def get_user_balance(self, user_id: str) -> values.Balance:
        """Read a balance: one strongly consistent read, no write."""
        with self._call("get_user_balance"):
            return services.get_user_balance(self._ctx, user_id)

    def set_credit_limit(
        self, *, idempotency_key: str, user_id: str, limit: Amount
    ) -> values.CreditLimitResult:
        """Set how far below zero an account may go, exactly once per idempotency key.

        One request. A limit below the current debt is allowed and only blocks
        further debits; the change is a ``limit`` entry in history.
        """
        with self._call("set_credit_limit", idempotency_key=idempotency_key, write=True):
            return services.set_credit_limit(
                self._ctx, idempotency_key=idempotency_key, user_id=user_id, limit=limit
            )

    # Movements --------------------------------------------------------------

    def transact(
        self,
        *,
        idempotency_key: str,
        user_id: str,
        amount: Amount,
        type: EntryTypeLike,
        currency: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> values.TransactResult:
        """Credit or debit one account, exactly once per idempotency key."""
        with self._call("transact", idempotency_key=idempotency_key, write=True):
            return services.transact(
                self._ctx,
                idempotency_key=idempotency_key,
                user_id=user_id,
                amount=amount,
                type=type,
                currency=currency,
                metadata=metadata,
            )

    def transfer(
        self,
        *,
        idempotency_key: str,
        from_user_id: str,
        to_user_id: str,
        amount: Amount,
        currency: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> values.TransferResult:
        """Move money between two accounts, exactly once per idempotency key."""
        with self._call("transfer", idempotency_key=idempotency_key, write=True):
            return services.transfer(
                self._ctx,
                idempotency_key=idempotency_key,
                from_user_id=from_user_id,
                to_user_id=to_user_id,
                amount=amount,
                currency=currency,
                metadata=metadata,
            )

    # Reading back -----------------------------------------------------------

    def history(
        self, user_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> values.HistoryPage:
        """A page of an account's applied movements, newest first.

        Raises:
            UserNotFound: The first page is empty and no user has this id.
        """
        with self._call("history"):
            return services.history(self._ctx, user_id, limit=limit, cursor=cursor)

    def reconcile(self, user_ids: Iterable[str] | None = None) -> values.ReconcileReport:
        """Check every balance (or those named) against its history."""
        with self._call("reconcile", bounded=False):
            return services.reconcile(self._ctx, user_ids)

    # Holds ------------------------------------------------------------------

    def hold(
        self,
        *,
        idempotency_key: str,
        user_id: str,
        amount: Amount,
        currency: str | None = None,
        to_user_id: str | None = None,
        timeout: float | timedelta | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> values.HoldResult:
        """Reserve ``amount`` of a spendable balance until captured, voided or expired.

        ``to_user_id`` makes it a pending transfer (captures credit that account);
        ``timeout`` is seconds (int, float) or a timedelta, None for no expiry.
        """
        with self._call("hold", idempotency_key=idempotency_key, write=True):
            return services.hold(
                self._ctx,
                idempotency_key=idempotency_key,
                user_id=user_id,
                amount=amount,
                currency=currency,
                to_user_id=to_user_id,
                timeout=timeout,
                metadata=metadata,
            )

    def capture(
        self,
        *,
        idempotency_key: str,
        hold_id: str,
        amount: Amount | None = None,
        final: bool = True,
        metadata: Mapping[str, str] | None = None,
    ) -> values.CaptureResult:
        """Capture up to the hold's remaining amount (None: all); ``final`` releases the rest."""
        with self._call("capture", idempotency_key=idempotency_key, write=True):
            return services.capture(
                self._ctx,
                idempotency_key=idempotency_key,
                hold_id=hold_id,
                amount=amount,
                final=final,
                metadata=metadata,
            )

    def void(
        self, *, idempotency_key: str, hold_id: str, metadata: Mapping[str, str] | None = None
    ) -> values.VoidResult:
        """Release what remains of a hold to its holder."""
        with self._call("void", idempotency_key=idempotency_key, write=True):
            return services.void(
                self._ctx, idempotency_key=idempotency_key, hold_id=hold_id, metadata=metadata
            )

    def get_hold(self, hold_id: str) -> values.Hold:
        """One hold as it stands now (``expired`` from its expiry instant)."""
        with self._call("get_hold"):
            return services.get_hold(self._ctx, hold_id)

    def holds(self, user_id: str) -> list[values.Hold]:
        """An account's active holds, soonest expiry first."""
        with self._call("holds"):
            return services.holds(self._ctx, user_id)

    def expire_holds(self, user_ids: Iterable[str] | None = None) -> values.ExpiryReport:
        """Release expired holds into history (all accounts, by a Scan, or those named)."""
        with self._call("expire_holds", write=True, bounded=False):
            return services.expire_holds(self._ctx, None if user_ids is None else list(user_ids))

    # Refunds and postings ----------------------------------------------------

    def refund(
        self,
        *,
        idempotency_key: str,
        of: str,
        amount: Amount | None = None,
        currency: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> values.RefundResult:
        """Give back ``amount`` (None: all that is left) of the movement keyed ``of``.

        A debit's refund credits its account; a credit's debits it; a transfer's
        or a capture's moves the money back from the payee; a posting's reverses
        every leg (whole only). ``currency``, when named, must be the original's.
        """
        with self._call("refund", idempotency_key=idempotency_key, write=True):
            return services.refund(
                self._ctx, idempotency_key=idempotency_key, of=of, amount=amount,
                currency=currency, metadata=metadata,
            )  # fmt: skip

    def post(
        self,
        *,
        idempotency_key: str,
        legs: Sequence[values.Leg],
        currency: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> values.PostResult:
        """Apply balanced legs on up to 50 accounts together (legs on one account merged)."""
        with self._call("post", idempotency_key=idempotency_key, write=True):
            return services.post(
                self._ctx, idempotency_key=idempotency_key, legs=legs, currency=currency,
                metadata=metadata,
            )  # fmt: skip
