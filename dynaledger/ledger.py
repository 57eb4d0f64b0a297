"""The :class:`Ledger`: one configuration, and the operations on it."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlparse

from botocore.client import BaseClient
from botocore.utils import is_valid_endpoint_url, is_valid_ipv6_endpoint_url

from dynaledger import seeds, services, values
from dynaledger.errors import ValidationError
from dynaledger.migrations import Migrator, TableProtection
from dynaledger.models import ConnectionSettings, TableLayout, bind_models
from dynaledger.money import Currencies, parse_assets
from dynaledger.services import Context, RetryPolicy, RetryStats, deployment

#: Credentials sent to a local server when none are configured: local
#: servers accept any, and AWS never sees these.
PLACEHOLDER_CREDENTIALS = ("dynaledger-local", "dynaledger-local")
DEFAULT_LOCAL_REGION = "us-east-1"
#: The environment variables that set a :class:`TableLayout`, by its field.
LAYOUT_VARIABLES = {
    "users_table": "DYNALEDGER_USERS_TABLE",
    "transactions_table": "DYNALEDGER_TRANSACTIONS_TABLE",
    "migrations_table": "DYNALEDGER_MIGRATIONS_TABLE",
    "idempotency_key_attribute": "DYNALEDGER_IDEMPOTENCY_KEY_ATTRIBUTE",
}


def layout_from_env(environ: Mapping[str, str], **overrides: str | None) -> TableLayout:
    """The table layout the environment names (``DYNALEDGER_USERS_TABLE``...), with overrides."""
    names = {field: environ.get(variable) for field, variable in LAYOUT_VARIABLES.items()}
    names.update(overrides)
    return TableLayout(**{field: value for field, value in names.items() if value})


def is_loopback(endpoint_url: str | None) -> bool:
    """True when ``endpoint_url`` points at this machine (localhost, 127.0.0.0/8, ::1)."""
    if not endpoint_url:
        return False
    host = urlparse(endpoint_url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_endpoint(endpoint_url: object) -> None:
    """Refuse what botocore would refuse with a bare ``ValueError``, naming the field and rule."""
    if endpoint_url is None:
        return
    rule = "must be an http:// or https:// URL with a host, such as http://localhost:8000"
    if not isinstance(endpoint_url, str):
        raise ValidationError("endpoint_url", f"{rule}, not {type(endpoint_url).__name__}")
    parsed = urlparse(endpoint_url)
    try:
        parsed.port  # noqa: B018 - parsing the port is the check: "http://host:x" raises
    except ValueError:
        raise ValidationError(
            "endpoint_url", f"{rule}; {endpoint_url!r} has an invalid port"
        ) from None
    valid = is_valid_endpoint_url(endpoint_url) or is_valid_ipv6_endpoint_url(endpoint_url)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname or not valid:
        raise ValidationError("endpoint_url", f"{rule}, not {endpoint_url!r}")


class Ledger:
    """User balances in DynamoDB, moved by atomic, idempotent, never-overdrawn transactions.

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
    ) -> None:
        currencies = Currencies(dict(assets or {}))
        currency = currencies.validate(default_currency, "default_currency")
        _check_endpoint(endpoint_url)
        local = is_loopback(endpoint_url)
        has_credentials = any(os.environ.get(name) for name in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE"))
        self.settings = ConnectionSettings(
            endpoint_url=endpoint_url,
            region=region or (DEFAULT_LOCAL_REGION if local else None),
            table_prefix=table_prefix,
            credentials=PLACEHOLDER_CREDENTIALS if local and not has_credentials else None,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        self._ctx = Context(
            models=bind_models(self.settings, layout),
            opening_balance=currencies.parse_balance(opening_balance, currency, "opening_balance"),
            currencies=currencies,
            default_currency=currency,
            retry=retry or RetryPolicy(),
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Ledger:
        """A ledger configured from the environment.

        Reads ``AWS_ENDPOINT_URL_DYNAMODB`` (then ``AWS_ENDPOINT_URL``),
        ``AWS_REGION`` (then ``AWS_DEFAULT_REGION``), ``DYNALEDGER_TABLE_PREFIX``,
        ``DYNALEDGER_ASSETS`` (``BTC:8,ETH:18``) and the layout variables
        (``DYNALEDGER_USERS_TABLE``, ``DYNALEDGER_TRANSACTIONS_TABLE``,
        ``DYNALEDGER_MIGRATIONS_TABLE``, ``DYNALEDGER_IDEMPOTENCY_KEY_ATTRIBUTE``);
        keyword arguments win over all of them.
        """
        env = os.environ if environ is None else environ
        settings: dict[str, Any] = {
            "endpoint_url": env.get("AWS_ENDPOINT_URL_DYNAMODB") or env.get("AWS_ENDPOINT_URL"),
            "region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
            "table_prefix": env.get("DYNALEDGER_TABLE_PREFIX", ""),
            "layout": layout_from_env(env),
            "assets": parse_assets(env.get("DYNALEDGER_ASSETS", ""), "DYNALEDGER_ASSETS"),
        }
        settings.update(overrides)
        return cls(**settings)

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
    def stats(self) -> RetryStats:
        """Counters of the attempts and retries this ledger made."""
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
        turns either off. The first migrate records this ledger's opening
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
        applied = Migrator(self._ctx, protection=protection).upgrade()
        deployment.record(self._ctx)
        return applied

    def deployment_settings(self) -> values.DeploymentSettings | None:
        """The deployment's stored settings (None before the first migrate)."""
        return deployment.stored(self._ctx)

    def apply_settings(self) -> values.DeploymentSettings:
        """Make this ledger's opening balance, default currency and assets the deployment's.

        Raises:
            ValidationError: An account depends on a setting this would change
                (it holds an asset whose decimals change, or relies on the
                default currency or opening balance).
        """
        return deployment.apply(self._ctx)

    def migration_status(self) -> list[values.RevisionStatus]:
        """Every migration revision and when it was applied."""
        return Migrator(self._ctx).status()

    def release_migration(self, revision: str) -> values.RevisionStatus:
        """Free the claim a migrator that died left on ``revision``; return what was freed.

        Use it only when the migrator named by ``migration_status()`` is gone;
        the next ``migrate`` applies the revision again.
        """
        return Migrator(self._ctx).release(revision)

    def table_settings(self) -> list[values.TableSettings]:
        """Point-in-time recovery and deletion protection of each existing table."""
        return Migrator(self._ctx).table_settings()

    def seed(self) -> values.SeedReport:
        """Create the test users of ``dynaledger/seeds/users.json`` that do not exist yet."""
        return seeds.seed(self._ctx)

    def generate_users(
        self, count: int, *, progress: Callable[[int, int], None] | None = None
    ) -> values.SeedReport:
        """Write ``count`` synthetic users in batches, skipping those that exist."""
        return seeds.generate(self._ctx, count, progress=progress)

    # Accounts ---------------------------------------------------------------

    def create_user(
        self, user_id: str, *, currency: str | None = None, balance: object = None
    ) -> values.User:
        """Create an account; with no ``balance`` it starts on the opening balance."""
        return services.create_user(self._ctx, user_id, currency=currency, balance=balance)

    def get_user_balance(self, user_id: str) -> values.Balance:
        """Read a balance: one strongly consistent read, no write."""
        return services.get_user_balance(self._ctx, user_id)

    # Movements --------------------------------------------------------------

    def transact(
        self,
        *,
        idempotency_key: str,
        user_id: str,
        amount: object,
        type: object,
        currency: str | None = None,
    ) -> values.TransactResult:
        """Credit or debit one account, exactly once per idempotency key."""
        return services.transact(
            self._ctx,
            idempotency_key=idempotency_key,
            user_id=user_id,
            amount=amount,
            type=type,
            currency=currency,
        )

    def transfer(
        self,
        *,
        idempotency_key: str,
        from_user_id: str,
        to_user_id: str,
        amount: object,
        currency: str | None = None,
    ) -> values.TransferResult:
        """Move money between two accounts, exactly once per idempotency key."""
        return services.transfer(
            self._ctx,
            idempotency_key=idempotency_key,
            from_user_id=from_user_id,
            to_user_id=to_user_id,
            amount=amount,
            currency=currency,
        )

    # Reading back -----------------------------------------------------------

    def history(
        self, user_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> values.HistoryPage:
        """A page of an account's applied movements, newest first."""
        return services.history(self._ctx, user_id, limit=limit, cursor=cursor)

    def reconcile(self, user_ids: Iterable[str] | None = None) -> values.ReconcileReport:
        """Check every balance (or those named) against its history."""
        return services.reconcile(self._ctx, user_ids)
