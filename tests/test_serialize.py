"""Results as JSON with every digit: Decimal as a string."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal

from dynaledger import (
    EntryType,
    HistoryEntry,
    HistoryPage,
    Mismatch,
    ReconcileReport,
    TransactResult,
    as_dict,
    to_json,
)

WHEN = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)


class TestJson:
    def test_a_result_keeps_its_digits(self) -> None:
        """239.50 stays the string "239.50"; time is ISO-8601; type is its value."""
        result = TransactResult("k1", "alice", Decimal("239.50"), EntryType.DEBIT, "USD", WHEN,
                                False)  # fmt: skip
        assert (
            '{"idempotency_key": "k1", "user_id": "alice", "amount": "239.50", "type": "debit", '
            '"currency": "USD", "timestamp": "2026-01-02T03:04:05.678901+00:00", '
            '"replayed": false, "metadata": {}}'
        ) == to_json(result)
        assert Decimal("239.50") == Decimal(json.loads(to_json(result))["amount"])

    def test_decimals_are_written_in_digits_never_an_exponent(self) -> None:
        """Eighteen decimals stay digits, as the CLI prints them."""
        assert ["0.000000000000000001", "1000", "12.30"] == as_dict(
            [Decimal("1E-18"), Decimal("1E+3"), Decimal("12.30")]
        )

    def test_nested_results_and_their_verdicts(self) -> None:
        """Pages hold lists of entries; a reconcile report carries ``ok``."""
        page = HistoryPage((HistoryEntry("t", "bob", Decimal("1.5"), EntryType.CREDIT, "EUR", WHEN,
                                         "alice"),), None)  # fmt: skip
        report = ReconcileReport(2, (Mismatch("bob", Decimal("40.00"), Decimal("1.00")),))
        assert {
            "items": [{"idempotency_key": "t", "user_id": "bob", "amount": "1.5",
                       "type": "credit", "currency": "EUR",
                       "timestamp": "2026-01-02T03:04:05.678901+00:00",
                       "counterparty_id": "alice", "kind": None, "hold_id": None,
                       "metadata": {}, "refund_of": None, "posted_with": []}],
            "next_cursor": None,
        } == as_dict(page)  # fmt: skip
        assert {
            "checked": 2,
            "mismatches": [
                {"user_id": "bob", "expected": "40.00", "actual": "1.00", "field": "balance"}
            ],
            "problems": [],
            "ok": False,
        } == as_dict(report)
