"""Refunds and multi-account postings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dynaledger import services, values
from dynaledger._facade.base import Amount, Facade


class RefundOperations(Facade):
    """The ledger's refunds and postings."""

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
        """Apply balanced legs on up to 49 accounts together (legs on one account merged)."""
        with self._call("post", idempotency_key=idempotency_key, write=True):
            return services.post(
                self._ctx, idempotency_key=idempotency_key, legs=legs, currency=currency,
                metadata=metadata,
            )  # fmt: skip
