"""Movements (credit, debit, transfer) and reading them back (history, reconcile)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dynaledger import services, values
from dynaledger._facade.base import Amount, EntryTypeLike, Facade


class MovementOperations(Facade):
    """The ledger's movements and the reads of what they did."""

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
