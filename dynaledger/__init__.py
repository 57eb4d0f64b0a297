"""dynaledger: user balances in Amazon DynamoDB, moved by atomic, idempotent transactions."""

from dynaledger.ledger import Ledger
from dynaledger.models.layout import TableLayout
from dynaledger.services import RetryPolicy
from dynaledger.values import (
    Balance,
    EntryType,
    HistoryEntry,
    HistoryPage,
    Mismatch,
    ReconcileReport,
    RecordProblem,
    TransactResult,
    TransferResult,
)

__version__ = "0.1.0"

__all__ = [
    "Balance",
    "EntryType",
    "HistoryEntry",
    "HistoryPage",
    "Ledger",
    "Mismatch",
    "ReconcileReport",
    "RecordProblem",
    "RetryPolicy",
    "TableLayout",
    "TransactResult",
    "TransferResult",
    "__version__",
]
