"""Holds: reserve money, capture it, void it, list and expire holds."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta

from dynaledger import services, values
from dynaledger._facade.base import Amount, Facade


class HoldOperations(Facade):
    """The ledger's hold operations."""

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
            return services.expire_holds(self._ctx, user_ids)
