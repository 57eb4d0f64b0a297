"""The :class:`Ledger`: one configuration, and the operations on it.

The operations are grouped by capability in ``dynaledger/_facade/`` (schema,
accounts, movements, holds, and refunds with postings); this module holds the
configuration, the connection's lifecycle and what a ledger tells about itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import Any

from botocore.client import BaseClient
from botocore.config import Config

from dynaledger import settings
from dynaledger._facade.accounts import AccountOperations
from dynaledger._facade.base import Amount, EntryTypeLike
from dynaledger._facade.holds import HoldOperations
from dynaledger._facade.movements import MovementOperations
from dynaledger._facade.refunds import RefundOperations
from dynaledger._facade.schema import SchemaOperations
from dynaledger.errors import ValidationError
from dynaledger.models import ConnectionSettings, TableLayout, bind_models
from dynaledger.money import Currencies, parse_assets
from dynaledger.services import Context, RetryPolicy, RetryStats


class Ledger(
    SchemaOperations, AccountOperations, MovementOperations, HoldOperations, RefundOperations
):
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
            ``set_credit_limit``, ``transact``, ``transfer``, ``history``, ``ping``, ``hold``,
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
        region = region or None  # "" (an unset variable passed on) is botocore's own lookup
        currencies = Currencies(assets)  # checked there: a mapping of codes to decimals
        currency = currencies.validate(default_currency, "default_currency")
        settings.check_endpoint(endpoint_url)
        settings.check_arguments(
            region=region,
            clock=clock,
            read_timeout=read_timeout,
            connect_timeout=connect_timeout,
            deadline=deadline,
            max_pool_connections=max_pool_connections,
            botocore_config=botocore_config,
            retry=retry,
            layout=layout,
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
        arguments, sources = settings.from_environment(env, overrides)
        retry_fields = arguments.pop("retry", None)
        if retry_fields:
            arguments["retry"] = RetryPolicy(**retry_fields)
        if "layout" not in overrides:
            arguments["layout"] = settings.layout_from_env(env)
            # A name too long or short with the prefix is found later: name its variable too.
            sources.update(
                {field: name for field, name in settings.LAYOUT_VARIABLES.items() if env.get(name)}
            )
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


__all__ = ["Amount", "EntryTypeLike", "Ledger"]
