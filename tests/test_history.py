"""History pages newest first with an opaque cursor; reconcile catches tampering."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from dynaledger import Ledger
from dynaledger.errors import UserNotFound, ValidationError
from tests.conftest import RequestCounter, unique


def _user_with_entries(ledger: Ledger, count: int) -> tuple[str, list[str]]:
    user_id = unique("h")
    ledger.create_user(user_id, balance="0")
    keys = []
    for n in range(count):
        key = f"{user_id}-{n:03d}"
        ledger.transact(idempotency_key=key, user_id=user_id, amount=n + 1, type="credit")
        keys.append(key)
    return user_id, keys


class TestHistory:
    def test_lists_entries_newest_first(self, ledger: Ledger) -> None:
        """Entries come back in reverse time order, with their amounts."""
        user_id, keys = _user_with_entries(ledger, 3)
        page = ledger.history(user_id)
        assert list(reversed(keys)) == [e.idempotency_key for e in page.items]
        assert [Decimal("3.00"), Decimal("2.00"), Decimal("1.00")] == [e.amount for e in page.items]
        assert page.next_cursor is None

    def test_pages_with_a_cursor_until_it_is_none(self, ledger: Ledger) -> None:
        """Pages of 2 over 5 entries give 2, 2, 1 entries, each once, then no cursor."""
        user_id, keys = _user_with_entries(ledger, 5)
        seen, sizes, cursor = [], [], None
        while True:
            page = ledger.history(user_id, limit=2, cursor=cursor)
            seen.extend(e.idempotency_key for e in page.items)
            sizes.append(len(page.items))
            cursor = page.next_cursor
            if cursor is None:
                break
        assert ([2, 2, 1], list(reversed(keys))) == (sizes, seen)

    def test_a_full_last_page_has_no_cursor(self, ledger: Ledger) -> None:
        """When the entries fill the page exactly, next_cursor is None, not an empty page."""
        user_id, _ = _user_with_entries(ledger, 2)
        assert ledger.history(user_id, limit=2).next_cursor is None

    def test_a_user_without_entries_has_an_empty_history(self, ledger: Ledger) -> None:
        """No movements, no entries, no cursor."""
        user_id = unique("quiet")
        ledger.create_user(user_id)
        page = ledger.history(user_id)
        assert ((), None) == (page.items, page.next_cursor)

    @pytest.mark.parametrize("limit", [0, 1001, -1, True, 2.5, "10"])
    def test_limit_must_be_from_1_to_1000(self, ledger: Ledger, limit: object) -> None:
        """An out-of-range or non-int limit is a ValidationError on limit."""
        with pytest.raises(ValidationError) as caught:
            ledger.history("anyone", limit=limit)  # type: ignore[arg-type]
        assert "limit" == caught.value.field

    @pytest.mark.parametrize("cursor", ["not-base64!", "e30=", "WyJhIiwgImIiXQ=="])
    def test_a_foreign_or_garbled_cursor_is_refused(self, ledger: Ledger, cursor: str) -> None:
        """Cursors are opaque; anything this user's history did not give out is refused."""
        with pytest.raises(ValidationError) as caught:
            ledger.history("anyone", cursor=cursor)
        assert "cursor" == caught.value.field

    def test_another_users_cursor_is_refused(self, ledger: Ledger) -> None:
        """A cursor is bound to the user whose history made it."""
        user_id, _ = _user_with_entries(ledger, 3)
        cursor = ledger.history(user_id, limit=1).next_cursor
        with pytest.raises(ValidationError):
            ledger.history(unique("other"), cursor=cursor)


class TestReconcile:
    def test_a_ledger_moved_only_by_the_library_reconciles(self, fresh_ledger: Ledger) -> None:
        """Credits, debits and transfers keep every balance equal to its history."""
        fresh_ledger.seed()
        fresh_ledger.transact(idempotency_key="r1", user_id="carol", amount="5", type="debit")
        fresh_ledger.transfer(idempotency_key="r2", from_user_id="alice", to_user_id="bob",
                              amount="20")  # fmt: skip
        report = fresh_ledger.reconcile()
        assert (True, 5, ()) == (report.ok, report.checked, report.mismatches)

    def test_catches_a_balance_edited_behind_the_librarys_back(self, fresh_ledger: Ledger) -> None:
        """A balance changed with a raw update_item is reported with both figures."""
        fresh_ledger.create_user("tampered", balance="10")
        fresh_ledger.transact(idempotency_key="t1", user_id="tampered", amount="5", type="credit")
        fresh_ledger.botocore_client.update_item(
            TableName=fresh_ledger.table_names[0],
            Key={"userId": {"S": "tampered"}},
            UpdateExpression="SET balance = :b",
            ExpressionAttributeValues={":b": {"N": "1000"}},
        )
        report = fresh_ledger.reconcile()
        assert not report.ok
        (mismatch,) = report.mismatches
        assert ("tampered", Decimal("15.00"), Decimal("1000.00")) == (
            mismatch.user_id, mismatch.expected, mismatch.actual,
        )  # fmt: skip

    def test_checks_only_the_users_named(self, fresh_ledger: Ledger) -> None:
        """With user ids, only those accounts are checked."""
        fresh_ledger.seed()
        assert 2 == fresh_ledger.reconcile(["alice", "bob"]).checked

    def test_an_unknown_named_user_is_user_not_found(self, fresh_ledger: Ledger) -> None:
        """Reconciling an id nobody has is an error, not a silent pass."""
        with pytest.raises(UserNotFound):
            fresh_ledger.reconcile(["ghost"])


class TestUnknownUser:
    def test_an_empty_first_page_costs_one_more_read_and_a_full_one_none(
        self, ledger: Ledger, count_requests: Callable[[Ledger], RequestCounter]
    ) -> None:
        """An account with no movements: Query + GetItem; with movements: the Query alone."""
        empty = unique("h")
        ledger.create_user(empty)
        busy, _ = _user_with_entries(ledger, 1)
        counter = count_requests(ledger)
        costs = []
        for user_id in (empty, busy):
            counter.reset()
            ledger.history(user_id)
            costs.append(dict(counter.by_operation))
        assert [{"Query": 1, "GetItem": 1}, {"Query": 1}] == costs
