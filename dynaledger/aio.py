"""The ledger for asyncio: the same operations as coroutines.

PynamoDB and botocore are synchronous, so :class:`AsyncLedger` runs each call
of its :class:`~dynaledger.Ledger` on a thread pool of its own, at most
``max_concurrency`` at a time; the event loop never waits on DynamoDB.
Further calls queue for a free thread. A cancelled coroutine stops waiting,
but the call it started finishes in its thread (a write still applies once
at most; retry it with the same key to learn its outcome).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from types import TracebackType
from typing import Any, TypeVar

from dynaledger import values
from dynaledger.errors import ConfigurationError, ValidationError
from dynaledger.ledger import Amount, EntryTypeLike, Ledger
from dynaledger.money import validate_user_ids

_T = TypeVar("_T")


class AsyncLedger:
    """A :class:`~dynaledger.Ledger` whose operations are coroutines.

    Args:
        ledger: The ledger to run calls on (it stays usable synchronously too).
        max_concurrency: Calls running at once; by default the ledger's
            connection pool size, so no call waits for a connection.
    """

    def __init__(self, ledger: Ledger, *, max_concurrency: int | None = None) -> None:
        if not isinstance(ledger, Ledger):
            raise ValidationError("ledger", f"must be a Ledger, not {type(ledger).__name__}")
        limit = ledger.settings.max_pool_connections if max_concurrency is None else max_concurrency
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValidationError("max_concurrency", f"must be an int of at least 1, not {limit!r}")
        self.ledger = ledger
        self.max_concurrency = limit
        self._executor = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="dynaledger")
        self._closed = False

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        max_concurrency: int | None = None,
        **overrides: Any,
    ) -> AsyncLedger:
        """An async ledger on :meth:`Ledger.from_env` (same variables and overrides)."""
        return cls(Ledger.from_env(environ, **overrides), max_concurrency=max_concurrency)

    def __repr__(self) -> str:
        return f"AsyncLedger({self.ledger!r}, max_concurrency={self.max_concurrency})"

    async def _run(self, function: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
        if self._closed:
            raise ConfigurationError("this AsyncLedger was closed")
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, function, *args, **kwargs)
        return await loop.run_in_executor(self._executor, call)

    async def aclose(self) -> None:
        """Wait for running calls, then close the threads and the ledger's connections.

        Later calls raise :class:`~dynaledger.errors.ConfigurationError`.
        """
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)
        self.ledger.close()

    async def __aenter__(self) -> AsyncLedger:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # Deploy gates and schema -------------------------------------------------

    async def ping(self) -> values.Readiness:
        """See :meth:`Ledger.ping`."""
        return await self._run(self.ledger.ping)

    async def check_schema(self) -> values.SchemaCheck:
        """See :meth:`Ledger.check_schema`."""
        return await self._run(self.ledger.check_schema)

    async def migrate(self, **protection: bool | None) -> list[str]:
        """See :meth:`Ledger.migrate`."""
        return await self._run(self.ledger.migrate, **protection)

    async def deployment_settings(self) -> values.DeploymentSettings | None:
        """See :meth:`Ledger.deployment_settings`."""
        return await self._run(self.ledger.deployment_settings)

    async def apply_settings(self) -> values.DeploymentSettings:
        """See :meth:`Ledger.apply_settings`."""
        return await self._run(self.ledger.apply_settings)

    async def migration_status(self) -> list[values.RevisionStatus]:
        """See :meth:`Ledger.migration_status`."""
        return await self._run(self.ledger.migration_status)

    async def release_migration(self, revision: str) -> values.RevisionStatus:
        """See :meth:`Ledger.release_migration`."""
        return await self._run(self.ledger.release_migration, revision)

    async def table_settings(self) -> list[values.TableSettings]:
        """See :meth:`Ledger.table_settings`."""
        return await self._run(self.ledger.table_settings)

    async def seed(self) -> values.SeedReport:
        """See :meth:`Ledger.seed`."""
        return await self._run(self.ledger.seed)

    async def generate_users(
        self, count: int, *, progress: Callable[[int, int], None] | None = None
    ) -> values.SeedReport:
        """See :meth:`Ledger.generate_users` (``progress`` runs in the ledger's thread)."""
        return await self._run(self.ledger.generate_users, count, progress=progress)

    # Accounts ----------------------------------------------------------------

    async def create_user(
        self,
        user_id: str,
        *,
        currency: str | None = None,
        balance: Amount | None = None,
        credit_limit: Amount = 0,
    ) -> values.User:
        """See :meth:`Ledger.create_user`."""
        return await self._run(
            self.ledger.create_user,
            user_id,
            currency=currency,
            balance=balance,
            credit_limit=credit_limit,
        )

    async def set_credit_limit(
        self, *, idempotency_key: str, user_id: str, limit: Amount
    ) -> values.CreditLimitResult:
        """See :meth:`Ledger.set_credit_limit`."""
        return await self._run(
            self.ledger.set_credit_limit,
            idempotency_key=idempotency_key,
            user_id=user_id,
            limit=limit,
        )

    async def get_user_balance(self, user_id: str) -> values.Balance:
        """See :meth:`Ledger.get_user_balance`."""
        return await self._run(self.ledger.get_user_balance, user_id)

    # Movements ---------------------------------------------------------------

    async def transact(
        self,
        *,
        idempotency_key: str,
        user_id: str,
        amount: Amount,
        type: EntryTypeLike,
        currency: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> values.TransactResult:
        """See :meth:`Ledger.transact`."""
        return await self._run(
            self.ledger.transact,
            idempotency_key=idempotency_key,
            user_id=user_id,
            amount=amount,
            type=type,
            currency=currency,
            metadata=metadata,
        )

    async def transfer(
        self,
        *,
        idempotency_key: str,
        from_user_id: str,
        to_user_id: str,
        amount: Amount,
        currency: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> values.TransferResult:
        """See :meth:`Ledger.transfer`."""
        return await self._run(
            self.ledger.transfer,
            idempotency_key=idempotency_key,
            from_user_id=from_user_id,
            to_user_id=to_user_id,
            amount=amount,
            currency=currency,
            metadata=metadata,
        )

    # Reading back ------------------------------------------------------------

    async def history(
        self, user_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> values.HistoryPage:
        """See :meth:`Ledger.history`."""
        return await self._run(self.ledger.history, user_id, limit=limit, cursor=cursor)

    async def reconcile(self, user_ids: Iterable[str] | None = None) -> values.ReconcileReport:
        """See :meth:`Ledger.reconcile`."""
        # Read here, in the loop's thread: an iterator is not to be consumed in a worker.
        ids = None if user_ids is None else validate_user_ids(user_ids)
        return await self._run(self.ledger.reconcile, ids)

    # Holds -------------------------------------------------------------------

    async def hold(
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
        """See :meth:`Ledger.hold`."""
        return await self._run(
            self.ledger.hold,
            idempotency_key=idempotency_key,
            user_id=user_id,
            amount=amount,
            currency=currency,
            to_user_id=to_user_id,
            timeout=timeout,
            metadata=metadata,
        )

    async def capture(
        self,
        *,
        idempotency_key: str,
        hold_id: str,
        amount: Amount | None = None,
        final: bool = True,
        metadata: Mapping[str, str] | None = None,
    ) -> values.CaptureResult:
        """See :meth:`Ledger.capture`."""
        return await self._run(
            self.ledger.capture,
            idempotency_key=idempotency_key,
            hold_id=hold_id,
            amount=amount,
            final=final,
            metadata=metadata,
        )

    async def void(
        self, *, idempotency_key: str, hold_id: str, metadata: Mapping[str, str] | None = None
    ) -> values.VoidResult:
        """See :meth:`Ledger.void`."""
        return await self._run(
            self.ledger.void, idempotency_key=idempotency_key, hold_id=hold_id, metadata=metadata
        )

    async def get_hold(self, hold_id: str) -> values.Hold:
        """See :meth:`Ledger.get_hold`."""
        return await self._run(self.ledger.get_hold, hold_id)

    async def holds(self, user_id: str) -> list[values.Hold]:
        """See :meth:`Ledger.holds`."""
        return await self._run(self.ledger.holds, user_id)

    async def expire_holds(self, user_ids: Iterable[str] | None = None) -> values.ExpiryReport:
        """See :meth:`Ledger.expire_holds`."""
        # Read here, in the loop's thread: an iterator is not to be consumed in a worker.
        ids = None if user_ids is None else validate_user_ids(user_ids)
        return await self._run(self.ledger.expire_holds, ids)

    async def refund(
        self,
        *,
        idempotency_key: str,
        of: str,
        amount: Amount | None = None,
        currency: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> values.RefundResult:
        """See :meth:`Ledger.refund`."""
        return await self._run(
            self.ledger.refund, idempotency_key=idempotency_key, of=of, amount=amount,
            currency=currency, metadata=metadata,
        )  # fmt: skip

    async def post(
        self,
        *,
        idempotency_key: str,
        legs: Sequence[values.Leg],
        currency: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> values.PostResult:
        """See :meth:`Ledger.post`."""
        return await self._run(
            self.ledger.post, idempotency_key=idempotency_key, legs=legs, currency=currency,
            metadata=metadata,
        )  # fmt: skip
