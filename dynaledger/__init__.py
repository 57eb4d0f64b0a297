"""dynaledger: user balances in Amazon DynamoDB, moved by atomic, idempotent transactions."""

import logging

from dynaledger.aio import AsyncLedger
from dynaledger.ledger import Ledger
from dynaledger.models.layout import TableLayout
from dynaledger.serialize import as_dict, to_json
from dynaledger.services import RetryPolicy, RetryStats
from dynaledger.values import (
    Balance,
    CaptureResult,
    CreditLimitResult,
    DeploymentSettings,
    EntryType,
    ExpiryReport,
    HistoryEntry,
    HistoryPage,
    Hold,
    HoldResult,
    Leg,
    Mismatch,
    PostResult,
    Readiness,
    ReconcileReport,
    RecordProblem,
    RefundResult,
    RevisionStatus,
    SchemaCheck,
    SeedReport,
    TableSettings,
    TransactResult,
    TransferResult,
    User,
    VoidResult,
)

# Silent unless the application configures logging: records go to "dynaledger.*".
logging.getLogger("dynaledger").addHandler(logging.NullHandler())

__version__ = "0.1.0"

__all__ = [
    "AsyncLedger",
    "Balance",
    "CaptureResult",
    "CreditLimitResult",
    "DeploymentSettings",
    "EntryType",
    "ExpiryReport",
    "HistoryEntry",
    "HistoryPage",
    "Hold",
    "HoldResult",
    "Ledger",
    "Leg",
    "Mismatch",
    "PostResult",
    "Readiness",
    "ReconcileReport",
    "RecordProblem",
    "RefundResult",
    "RetryPolicy",
    "RetryStats",
    "RevisionStatus",
    "SchemaCheck",
    "SeedReport",
    "TableLayout",
    "TableSettings",
    "TransactResult",
    "TransferResult",
    "User",
    "VoidResult",
    "__version__",
    "as_dict",
    "to_json",
]
