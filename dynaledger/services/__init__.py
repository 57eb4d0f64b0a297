"""The ledger's operations, as functions of a :class:`Context` and plain values.

:class:`dynaledger.Ledger` exposes them as methods; they are here, one module
per concern, so each can be read and tested on its own.
"""

from dynaledger.services._core import Context, RetryPolicy, RetryStats
from dynaledger.services.accounts import create_user, get_user_balance
from dynaledger.services.expiry import expire_holds
from dynaledger.services.history import history, reconcile
from dynaledger.services.holds import capture, get_hold, hold, holds, void
from dynaledger.services.limits import set_credit_limit
from dynaledger.services.movements import transact, transfer
from dynaledger.services.postings import post
from dynaledger.services.refunds import refund

__all__ = [
    "Context",
    "RetryPolicy",
    "RetryStats",
    "capture",
    "create_user",
    "expire_holds",
    "get_hold",
    "get_user_balance",
    "history",
    "hold",
    "holds",
    "post",
    "reconcile",
    "refund",
    "set_credit_limit",
    "transact",
    "transfer",
    "void",
]
