"""Accounts: create one, read its balance, set its credit limit."""

from __future__ import annotations

from dynaledger import services, values
from dynaledger._facade.base import Amount, Facade


class AccountOperations(Facade):
    """The ledger's account operations."""

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
