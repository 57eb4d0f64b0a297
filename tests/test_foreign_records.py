"""Records other clients write (the AWS CLI, a TypeScript service, a hand edit) are read
right or refused with a clear error: never a traceback, never a miscount."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest

from dynaledger import AsyncLedger, Ledger
from dynaledger.errors import (
    CurrencyMismatch,
    InsufficientFunds,
    RefundExceeded,
    UnreadableRecord,
    ValidationError,
)
from dynaledger.values import RecordProblem
from tests.conftest import operator_client, unique


def put_user(ledger: Ledger, user_id: str, **attributes: dict[str, str]) -> None:
    """Write a Users item as the AWS CLI would: exactly these attributes."""
    item = {"userId": {"S": user_id}, **attributes}
    ledger.botocore_client.put_item(TableName=ledger.table_names[0], Item=item)


def put_record(
    ledger: Ledger,
    key: str,
    user_id: str,
    amount: str,
    *,
    type_: str = "credit",
    timestamp: str = "2026-01-02T03:04:05.123Z",
    overrides: dict[str, dict[str, str]] | None = None,
) -> None:
    """Write a Transactions item the way the TypeScript service does: no currency, no status.

    ``overrides`` replaces or adds raw attributes, as a hand edit would.
    """
    item: dict[str, Any] = {
        "idempotencyKey": {"S": key},
        "userId": {"S": user_id},
        "amount": {"N": amount},
        "type": {"S": type_},
        "timestamp": {"S": timestamp},
        **(overrides or {}),
    }
    ledger.botocore_client.put_item(TableName=ledger.table_names[1], Item=item)


def all_pages(ledger: Ledger, user_id: str, limit: int) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        page = ledger.history(user_id, limit=limit, cursor=cursor)
        pages.append([entry.idempotency_key for entry in page.items])
        cursor = page.next_cursor
        if cursor is None:
            return pages


#: One instant's neighbourhood in every form other clients write, newest first by
#: instant (ties by key, descending). As strings they sort in another order.
MIXED_TIMESTAMPS = [
    ("m9", "2026-01-02T03:04:06Z"),
    ("m8", "2026-01-02T03:04:05.999999Z"),
    ("m7", "2026-01-02T03:04:05.124Z"),
    ("m6", "2026-01-02T03:04:05.123456Z"),
    ("m5", "2026-01-02T03:04:05.123+00:00"),
    ("m4", "2026-01-02T03:04:05.123Z"),
    ("m3", "2026-01-02T03:04:05.123000Z"),
    ("m2", "2026-01-02T03:04:05.000001Z"),
    ("m1", "2026-01-02T03:04:05Z"),
    ("m0", "2026-01-02T03:04:04.9Z"),
]


class TestPagedHistoryOfForeignTimestamps:
    def test_several_records_in_one_millisecond_page_one_at_a_time(self, ledger: Ledger) -> None:
        """Three records at 05.123Z, paged with limit=1, are each listed once (not 1, then none)."""
        user_id = unique("ms")
        put_user(ledger, user_id, balance={"N": "100"})
        for key in ("a", "b", "c"):
            put_record(ledger, f"{user_id}-{key}", user_id, "1")
        assert [[f"{user_id}-c"], [f"{user_id}-b"], [f"{user_id}-a"]] == all_pages(
            ledger, user_id, 1
        )

    @pytest.mark.parametrize("limit", [1, 2, 3, 4, 10, 11])
    def test_mixed_forms_page_by_instant_each_entry_once(self, ledger: Ledger, limit: int) -> None:
        """Z, +00:00 and 0/3/6 fractional digits are ordered by instant on every page size."""
        user_id = unique("mix")
        put_user(ledger, user_id)
        for key, stamp in reversed(MIXED_TIMESTAMPS):
            put_record(ledger, f"{key}-{user_id}", user_id, "1", timestamp=stamp)
        pages = all_pages(ledger, user_id, limit)
        listed = list(itertools.chain.from_iterable(pages))
        # m5 and m4 and m3 are one instant: the tie goes to the key, descending.
        expected = ["m9", "m8", "m7", "m6", "m5", "m4", "m3", "m2", "m1", "m0"]
        assert [f"{key}-{user_id}" for key in expected] == listed
        assert all(len(page) <= limit for page in pages)

    def test_entries_written_by_the_library_and_by_others_interleave_by_instant(
        self, ledger: Ledger
    ) -> None:
        """The library's own microsecond timestamps and foreign millisecond ones sort together."""
        user_id = unique("both")
        ledger.create_user(user_id)
        ledger.transact(idempotency_key=f"{user_id}-own", user_id=user_id, amount=1, type="credit")
        put_record(ledger, f"{user_id}-old", user_id, "1", timestamp="2020-01-01T00:00:00.000Z")
        put_record(ledger, f"{user_id}-new", user_id, "1", timestamp="2099-01-01T00:00:00Z")
        assert [[f"{user_id}-new"], [f"{user_id}-own"], [f"{user_id}-old"]] == all_pages(
            ledger, user_id, 1
        )


class TestRecordsWithoutCurrency:
    def test_history_shows_the_accounts_currency(self, ledger: Ledger) -> None:
        """A record naming no currency on a EUR account is 3.00 EUR, not 3.00 USD."""
        user_id = unique("eur")
        ledger.create_user(user_id, currency="EUR")
        put_record(ledger, f"{user_id}-k", user_id, "3")
        (entry,) = ledger.history(user_id).items
        assert (Decimal("3.00"), "EUR") == (entry.amount, entry.currency)

    def test_a_replay_returns_the_accounts_currency(self, ledger: Ledger) -> None:
        """Replaying a foreign JPY credit returns currency JPY, with or without naming it."""
        user_id = unique("jpy")
        ledger.create_user(user_id, currency="JPY")
        put_record(ledger, f"{user_id}-k", user_id, "300")
        for currency in (None, "JPY"):
            result = ledger.transact(
                idempotency_key=f"{user_id}-k", user_id=user_id, amount=300, type="credit",
                currency=currency,
            )  # fmt: skip
            assert (True, "JPY", Decimal("300")) == (
                result.replayed,
                result.currency,
                result.amount,
            )

    def test_naming_the_accounts_currency_is_not_a_conflict(self, ledger: Ledger) -> None:
        """currency='EUR' on a replay of a currency-less record of a EUR account matches it."""
        user_id = unique("eur")
        ledger.create_user(user_id, currency="EUR")
        put_record(ledger, f"{user_id}-k", user_id, "3", type_="debit")
        result = ledger.transact(
            idempotency_key=f"{user_id}-k", user_id=user_id, amount="3", type="debit",
            currency="EUR",
        )  # fmt: skip
        assert (True, "EUR") == (result.replayed, result.currency)

    def test_a_refund_is_in_the_accounts_currency(self, ledger: Ledger) -> None:
        """A foreign JPY credit of 500 naming no currency is refunded in JPY: in part with
        currency='JPY' named, then the rest; 1.5 is refused for JPY's 0 decimals (it was
        CurrencyMismatch, judged in USD)."""
        user_id = unique("jpy")
        ledger.create_user(user_id, currency="JPY", balance=1000)
        put_record(ledger, f"{user_id}-k", user_id, "500")
        with pytest.raises(ValidationError, match=r"more decimals than JPY allows"):
            ledger.refund(idempotency_key=unique("r"), of=f"{user_id}-k", amount="1.5")
        first = ledger.refund(idempotency_key=unique("r"), of=f"{user_id}-k", amount=200,
                              currency="JPY")  # fmt: skip
        rest = ledger.refund(idempotency_key=unique("r"), of=f"{user_id}-k")
        assert [(Decimal(200), "JPY"), (Decimal(300), "JPY"), Decimal(500)] == [
            (first.amount, first.currency), (rest.amount, rest.currency),
            ledger.get_user_balance(user_id).amount,
        ]  # fmt: skip

    def test_a_known_record_without_currency_is_read_not_sent_in_the_default(
        self, ledger: Ledger, count_requests: Any
    ) -> None:
        """Replayed (so known to this ledger), a foreign EUR debit naming no currency is
        refunded with one read of it and its account and one write, not first a write in
        USD that the account refuses."""
        user_id = unique("eur")
        ledger.create_user(user_id, currency="EUR", balance=50)
        put_record(ledger, f"{user_id}-k", user_id, "10", type_="debit")
        ledger.transact(idempotency_key=f"{user_id}-k", user_id=user_id, amount="10",
                        type="debit")  # fmt: skip
        counter = count_requests(ledger)
        back = ledger.refund(idempotency_key=unique("r"), of=f"{user_id}-k")
        assert ((Decimal("10.00"), "EUR"), {"BatchGetItem": 1, "GetItem": 1,
                                            "TransactWriteItems": 1}) == (
            (back.amount, back.currency), dict(counter.by_operation),
        )  # fmt: skip


class TestCurrencyLearntFromTheAccount:
    def test_a_replayed_refusal_reports_the_accounts_currency(self, ledger: Ledger) -> None:
        """Debit 200 from a JPY account holding 150: first call and replay both say JPY."""
        user_id = unique("jpy")
        ledger.create_user(user_id, currency="JPY", balance=150)
        messages = []
        for _ in range(2):
            with pytest.raises(InsufficientFunds) as refused:
                ledger.transact(
                    idempotency_key=f"{user_id}-k", user_id=user_id, amount=200, type="debit"
                )
            error = refused.value
            messages.append((error.balance, error.amount, error.currency))
        assert [(Decimal("150"), Decimal("200"), "JPY")] * 2 == messages

    def test_three_decimals_are_valid_on_a_kwd_account_without_naming_it(
        self, ledger: Ledger
    ) -> None:
        """transact(amount='1.234') on a KWD account applies 1.234 KWD; the replay too."""
        user_id = unique("kwd")
        ledger.create_user(user_id, currency="KWD", balance="10")
        for replayed in (False, True):
            result = ledger.transact(
                idempotency_key=f"{user_id}-k", user_id=user_id, amount="1.234", type="debit"
            )
            assert (replayed, Decimal("1.234"), "KWD") == (
                result.replayed, result.amount, result.currency,
            )  # fmt: skip
        assert Decimal("8.766") == ledger.get_user_balance(user_id).amount

    def test_too_many_decimals_for_the_accounts_currency_is_refused(self, ledger: Ledger) -> None:
        """Three decimals on a USD account, currency not named: ValidationError naming USD."""
        user_id = unique("usd")
        ledger.create_user(user_id)
        with pytest.raises(ValidationError, match=r"more decimals than USD allows \(2\)"):
            ledger.transact(idempotency_key=unique("k"), user_id=user_id, amount="1.234",
                            type="credit")  # fmt: skip
        assert Decimal("100.00") == ledger.get_user_balance(user_id).amount

    def test_a_transfer_learns_the_payers_decimals(self, ledger: Ledger) -> None:
        """A 3-decimal transfer between KWD accounts without naming the currency applies."""
        payer, payee = unique("kwd"), unique("kwd")
        ledger.create_user(payer, currency="KWD", balance="5")
        ledger.create_user(payee, currency="KWD", balance="0")
        result = ledger.transfer(
            idempotency_key=unique("t"), from_user_id=payer, to_user_id=payee, amount="0.005"
        )
        assert ("KWD", Decimal("0.005")) == (result.currency, result.amount)
        assert Decimal("0.005") == ledger.get_user_balance(payee).amount


class TestUnreadableRecords:
    def test_history_names_the_unreadable_record(self, ledger: Ledger) -> None:
        """An amount stored as a string makes history raise UnreadableRecord naming its key."""
        user_id = unique("bad")
        put_user(ledger, user_id)
        put_record(ledger, f"{user_id}-ok", user_id, "1")
        ledger.botocore_client.put_item(
            TableName=ledger.table_names[1],
            Item={
                "idempotencyKey": {"S": f"{user_id}-bad"}, "userId": {"S": user_id},
                "amount": {"S": "12"}, "type": {"S": "credit"},
                "timestamp": {"S": "2026-01-02T03:04:06Z"},
            },
        )  # fmt: skip
        with pytest.raises(UnreadableRecord) as caught:
            ledger.history(user_id)
        assert (f"{user_id}-bad", ledger.table_names[1]) == (
            caught.value.key,
            caught.value.table_name,
        )

    @pytest.mark.parametrize(
        ("attributes", "problem"),
        [
            ({"type": {"S": "CREDIT"}}, "type 'CREDIT' is not 'credit' or 'debit'"),
            ({"amount": {"N": "-5"}}, "amount -5 is not a positive number"),
            ({"currency": {"S": "usd"}}, "currency: 'usd' is not a known ISO 4217 currency code"),
            ({"timestamp": {"S": "2026-01-02T05:04:05+02:00"}},
             "timestamp '2026-01-02T05:04:05+02:00' is not an ISO-8601 UTC instant"),
            ({"status": {"S": "pending"}}, "status 'pending' is not 'applied' or 'rejected'"),
        ],
    )  # fmt: skip
    def test_reconcile_reports_unreadable_records_and_checks_the_others(
        self, fresh_ledger: Ledger, attributes: dict[str, dict[str, str]], problem: str
    ) -> None:
        """A bad record is a problem of its user (ok is False, no verdict); others are judged."""
        ledger = fresh_ledger
        put_user(ledger, "broken", balance={"N": "105"})
        put_user(ledger, "healthy", balance={"N": "101"})
        put_record(ledger, "good", "healthy", "1")
        put_record(ledger, "weird", "broken", "5", overrides=attributes)
        report = ledger.reconcile()
        assert (False, 2, ()) == (report.ok, report.checked, report.mismatches)
        assert (RecordProblem("broken", ledger.table_names[1], "weird", problem),) == (
            report.problems
        )

    def test_an_unreadable_account_is_a_problem_and_the_rest_are_checked(
        self, fresh_ledger: Ledger
    ) -> None:
        """A balance stored as a string is reported for its account; a real mismatch still shows."""
        ledger = fresh_ledger
        put_user(ledger, "stringly", balance={"S": "ten"})
        put_user(ledger, "off", balance={"N": "7"})
        report = ledger.reconcile()
        assert (2, ("off",)) == (report.checked, tuple(m.user_id for m in report.mismatches))
        (problem,) = report.problems
        assert ("stringly", ledger.table_names[0]) == (problem.key, problem.table)

    def test_an_account_with_an_unreadable_hold_entry_is_a_problem_the_rest_checked(
        self, fresh_ledger: Ledger
    ) -> None:
        """A hold entry that is not a map (a hand edit): reconcile of the whole ledger lists it
        as its account's problem (it raised, checking no one); a real mismatch still shows."""
        ledger = fresh_ledger
        put_user(ledger, "odd", balance={"N": "95"}, held={"N": "5"}, holdCount={"N": "1"},
                 **{"hold:x": {"S": "garbage"}})  # fmt: skip
        put_user(ledger, "off", balance={"N": "7"})
        report = ledger.reconcile()
        assert (2, ("off",)) == (report.checked, tuple(m.user_id for m in report.mismatches))
        (problem,) = report.problems
        assert ("odd", "odd", ledger.table_names[0]) == (
            problem.user_id, problem.key, problem.table,
        )  # fmt: skip
        assert problem.problem.startswith("hold:x is not a hold entry")

    def test_a_credit_limit_without_available_is_refused_by_a_capture_to_it_too(
        self, ledger: Ledger
    ) -> None:
        """A capture pays its payee with no bound on the payee's balance; an account with a
        creditLimit and no available (a hand edit) is refused there as by credits
        (UnreadableRecord naming the rule), not given an available counted from 0."""
        house, tab, hold_id = unique("house"), unique("tab"), unique("h")
        ledger.create_user(house, balance="10")
        put_user(ledger, tab, balance={"N": "5"}, creditLimit={"N": "10"})
        ledger.hold(idempotency_key=hold_id, user_id=house, amount="1", to_user_id=tab)
        before = ledger.botocore_client.get_item(
            TableName=ledger.table_names[0], Key={"userId": {"S": tab}}
        )["Item"]
        with pytest.raises(UnreadableRecord) as caught:
            ledger.capture(idempotency_key=unique("c"), hold_id=hold_id)
        assert (tab, "creditLimit without available (balance + creditLimit, which debits check)"
                ) == (caught.value.key, caught.value.problem)  # fmt: skip
        after = ledger.botocore_client.get_item(
            TableName=ledger.table_names[0], Key={"userId": {"S": tab}}
        )["Item"]
        assert (before, "active") == (after, ledger.get_hold(hold_id).status)

    def test_a_bad_created_at_is_refused_naming_the_attribute(self, ledger: Ledger) -> None:
        """createdAt 'yesterday': a balance read raises UnreadableRecord whose problem names
        createdAt, not only the value."""
        user_id = unique("dated")
        put_user(ledger, user_id, balance={"N": "5"}, createdAt={"S": "yesterday"})
        with pytest.raises(UnreadableRecord) as caught:
            ledger.get_user_balance(user_id)
        assert (user_id, "createdAt: 'yesterday' is not an ISO-8601 timestamp") == (
            caught.value.key, caught.value.problem,
        )  # fmt: skip

    def test_an_error_that_names_its_attribute_is_not_named_twice(self, ledger: Ledger) -> None:
        """metadata holding a number: history raises UnreadableRecord whose problem is the
        map's own message, which names metadata already, once."""
        user_id, key = unique("meta"), unique("k")
        put_user(ledger, user_id, balance={"N": "5"})
        put_record(ledger, key, user_id, "1", overrides={"metadata": {"M": {"n": {"N": "1"}}}})
        with pytest.raises(UnreadableRecord) as caught:
            ledger.history(user_id)
        assert (key, "metadata: 'n' is not a string") == (caught.value.key, caught.value.problem)

    def test_a_stored_unknown_currency_is_a_clear_error_everywhere(self, ledger: Ledger) -> None:
        """currency 'usd' stored: balance and transact raise UnreadableRecord, not KeyError."""
        user_id = unique("lower")
        put_user(ledger, user_id, balance={"N": "10"}, currency={"S": "usd"})
        with pytest.raises(UnreadableRecord, match="'usd' is not a known ISO 4217"):
            ledger.get_user_balance(user_id)
        with pytest.raises(UnreadableRecord, match="'usd' is not a known ISO 4217"):
            ledger.transact(idempotency_key=unique("k"), user_id=user_id, amount=1, type="debit")

    def test_a_replay_of_an_unreadable_record_is_refused_clearly(self, ledger: Ledger) -> None:
        """A key held by a record of type 'CREDIT' is UnreadableRecord on reuse, never applied."""
        user_id = unique("caps")
        put_user(ledger, user_id, balance={"N": "10"})
        put_record(ledger, f"{user_id}-k", user_id, "1", type_="CREDIT")
        with pytest.raises(UnreadableRecord, match="type 'CREDIT'"):
            ledger.transact(
                idempotency_key=f"{user_id}-k", user_id=user_id, amount=1, type="credit"
            )
        assert Decimal("10.00") == ledger.get_user_balance(user_id).amount

    @pytest.mark.parametrize(
        ("attributes", "problem"),
        [
            ({"balance": {"S": "100"}}, "balance is stored as S, not N"),
            ({"balance": {"BOOL": True}}, "balance is stored as BOOL, not N"),
            ({"balance": {"NULL": True}}, "balance is stored as NULL"),
            ({"balance": {"N": "100"}, "currency": {"NULL": True}}, "currency is stored as NULL"),
            ({"balance": {"N": "1e40"}}, "balance 1E+40 is past the largest USD balance"),
            ({"balance": {"N": "100"}, "creditLimit": {"N": "50"}},
             "creditLimit without available"),
        ],
    )  # fmt: skip
    def test_an_account_the_ledger_cannot_read_refuses_reads_and_movements_alike(
        self, ledger: Ledger, attributes: dict[str, dict[str, str]], problem: str
    ) -> None:
        """The balance read, a credit and a debit all raise UnreadableRecord naming the rule
        (not a bare LedgerError or a refusal for funds), and nothing is written."""
        user_id = unique("acct")
        put_user(ledger, user_id, **attributes)
        calls = [
            lambda: ledger.get_user_balance(user_id),
            *(lambda kind=kind: ledger.transact(idempotency_key=f"{user_id}-{kind}",
                                                user_id=user_id, amount="1", type=kind)
              for kind in ("credit", "debit")),
        ]  # fmt: skip
        for call in calls:
            with pytest.raises(UnreadableRecord, match=re.escape(problem)) as caught:
                call()
            assert (user_id, ledger.table_names[0]) == (caught.value.key, caught.value.table_name)
        written = ledger.botocore_client.scan(TableName=ledger.table_names[1])["Items"]
        assert [] == [item for item in written if item["userId"]["S"] == user_id]

    def test_an_unreadable_entry_read_ahead_waits_for_its_own_page(self, ledger: Ledger) -> None:
        """h3, h2, h1 (type 'CREDIT'), h0 one per page: h3's and h2's pages are read, h1's
        raises UnreadableRecord naming it."""
        user_id = unique("ahead")
        put_user(ledger, user_id)
        for n in range(4):
            put_record(ledger, f"{user_id}-h{n}", user_id, "1",
                       type_="CREDIT" if n == 1 else "credit",
                       timestamp=f"2026-01-02T03:04:0{n}Z")  # fmt: skip
        first = ledger.history(user_id, limit=1)
        second = ledger.history(user_id, limit=1, cursor=first.next_cursor)
        assert [[f"{user_id}-h3"], [f"{user_id}-h2"]] == [
            [entry.idempotency_key for entry in page.items] for page in (first, second)
        ]
        with pytest.raises(UnreadableRecord) as caught:
            ledger.history(user_id, limit=1, cursor=second.next_cursor)
        assert f"{user_id}-h1" == caught.value.key

    def test_a_record_with_no_timestamp_is_outside_history_and_reconcile(
        self, fresh_ledger: Ledger
    ) -> None:
        """A credit of 5 with no timestamp: history shows nothing, reconcile reports the
        balance (105 against 100) as a mismatch, a replay and a refund raise UnreadableRecord."""
        ledger = fresh_ledger
        put_user(ledger, "u", balance={"N": "105"})
        ledger.botocore_client.put_item(TableName=ledger.table_names[1], Item={
            "idempotencyKey": {"S": "k"}, "userId": {"S": "u"}, "amount": {"N": "5"},
            "type": {"S": "credit"},
        })  # fmt: skip
        report = ledger.reconcile(["u"])
        assert ((), [(Decimal("100.00"), Decimal("105.00"))], ()) == (
            ledger.history("u").items,
            [(m.expected, m.actual) for m in report.mismatches],
            report.problems,
        )
        with pytest.raises(UnreadableRecord, match="an applied record with no timestamp"):
            ledger.transact(idempotency_key="k", user_id="u", amount="5", type="credit")
        with pytest.raises(UnreadableRecord, match="an applied record with no timestamp"):
            ledger.refund(idempotency_key="r", of="k")

    def test_a_record_in_another_currency_than_its_account(self, fresh_ledger: Ledger) -> None:
        """10 EUR on a USD account: history shows it as stored, a refund is CurrencyMismatch,
        reconcile names it as a problem."""
        ledger = fresh_ledger
        put_user(ledger, "u", balance={"N": "110"})
        put_record(ledger, "e1", "u", "10", overrides={"currency": {"S": "EUR"}})
        with pytest.raises(CurrencyMismatch):
            ledger.refund(idempotency_key="r1", of="e1")
        assert (
            [(Decimal("10.00"), "EUR")],
            (RecordProblem("u", ledger.table_names[1], "e1", "currency EUR on an account in USD"),),
        ) == (
            [(entry.amount, entry.currency) for entry in ledger.history("u").items],
            ledger.reconcile(["u"]).problems,
        )

    def test_a_negative_credit_limit_is_refused_by_reads(self, ledger: Ledger) -> None:
        """creditLimit -5 (with available 95): the balance read raises UnreadableRecord."""
        user_id = unique("neg")
        put_user(ledger, user_id, balance={"N": "100"}, creditLimit={"N": "-5"},
                 available={"N": "95"})  # fmt: skip
        with pytest.raises(UnreadableRecord, match="creditLimit -5 is negative"):
            ledger.get_user_balance(user_id)

    def test_an_opening_balance_without_a_balance_is_refused_by_reads(self, ledger: Ledger) -> None:
        """openingBalance 70 and no balance: the read said 100 (the ledger's opening) while
        reconcile started from 70; both refuse it now, naming the rule."""
        user_id = unique("open")
        put_user(ledger, user_id, openingBalance={"N": "70"})
        with pytest.raises(UnreadableRecord) as caught:
            ledger.get_user_balance(user_id)
        problems = [problem.problem for problem in ledger.reconcile([user_id]).problems]
        assert ["openingBalance without balance"] * 2 == [caught.value.problem, *problems]

    @pytest.mark.parametrize(
        ("attributes", "problem"),
        [
            ({"timestamp": {"S": "2026-01-02T05:04:05+02:00"}},
             "timestamp '2026-01-02T05:04:05+02:00' is not an ISO-8601 UTC instant"),
            ({"status": {"S": "rejected"}}, "status 'rejected' carries a timestamp"),
            ({"kind": {"S": "posting"}}, "a posting with no legs"),
            ({"refunded": {"N": "20"}}, "refunded 20 is not a total given back of 10"),
            ({"kind": {"S": "posting"}, "legs": {"S": "credit 10 u"}},
             "legs 'credit 10 u' are not a posting's legs"),
        ],
    )  # fmt: skip
    def test_a_record_history_refuses_is_refused_by_replays_and_refunds_too(
        self, ledger: Ledger, attributes: dict[str, dict[str, str]], problem: str
    ) -> None:
        """One rule for every reader: history, a replay of its key and a refund of it all
        raise UnreadableRecord naming it."""
        user_id = unique("rule")
        put_user(ledger, user_id, balance={"N": "100"})
        put_record(ledger, f"{user_id}-k", user_id, "10", overrides=attributes)
        calls = [
            lambda: ledger.history(user_id),
            lambda: ledger.transact(idempotency_key=f"{user_id}-k", user_id=user_id, amount="10",
                                    type="credit"),
            lambda: ledger.refund(idempotency_key=f"{user_id}-r", of=f"{user_id}-k"),
        ]  # fmt: skip
        for call in calls:
            with pytest.raises(UnreadableRecord, match=re.escape(problem)) as caught:
                call()
            assert f"{user_id}-k" == caught.value.key
        assert Decimal("100.00") == ledger.get_user_balance(user_id).amount

    def test_a_record_with_no_status_is_refunded_as_applied(self, ledger: Ledger) -> None:
        """The TypeScript service's credit (no status, kind or currency) is refunded in part,
        then to the end; past it, RefundExceeded with nothing left."""
        user_id = unique("ts")
        put_user(ledger, user_id, balance={"N": "110"})
        put_record(ledger, f"{user_id}-k", user_id, "10")
        first = ledger.refund(idempotency_key=f"{user_id}-r1", of=f"{user_id}-k", amount="4")
        rest = ledger.refund(idempotency_key=f"{user_id}-r2", of=f"{user_id}-k")
        with pytest.raises(RefundExceeded) as caught:
            ledger.refund(idempotency_key=f"{user_id}-r3", of=f"{user_id}-k")
        assert (Decimal("4.00"), Decimal("6.00"), Decimal("0.00"), Decimal("100.00")) == (
            first.amount, rest.amount, caught.value.left, ledger.get_user_balance(user_id).amount,
        )  # fmt: skip


class TestHoldEntriesEditedByHand:
    """A hold's record and its account entry are written together; one without the other
    (a hand edit) never comes right by sending again, so it is refused at once."""

    def test_an_expired_entry_without_a_hold_record_is_refused_not_retried(
        self, ledger: Ledger
    ) -> None:
        """A debit that needs the entry's money raises UnreadableRecord naming the entry (it
        used to send again and again); expire_holds lists it as the account's problem and
        still releases the next account's expired hold; nothing moves on the first."""
        user_id, next_id = unique("orphan"), unique("next")
        expired = {"expiresAt": {"S": "2020-01-01T00:00:00.000Z"}}
        put_user(ledger, user_id, balance={"N": "50"}, held={"N": "5"}, holdCount={"N": "1"},
                 **{"hold:x": {"M": {"remaining": {"N": "5"}, **expired}}})  # fmt: skip
        ledger.create_user(next_id, balance="10")
        hold_id = unique("h")
        ledger.hold(idempotency_key=hold_id, user_id=next_id, amount="4", timeout=1)
        report = Ledger(ledger.settings.endpoint_url, table_prefix=ledger.settings.table_prefix,
                        clock=lambda: datetime(2100, 1, 1, tzinfo=timezone.utc)
                        ).expire_holds([user_id, next_id])  # fmt: skip
        with pytest.raises(UnreadableRecord) as caught:
            ledger.transact(idempotency_key=unique("d"), user_id=user_id, amount="52",
                            type="debit")  # fmt: skip
        entry = "hold:x is the entry of a hold that has no record"
        assert (user_id, entry) == (caught.value.key, caught.value.problem)
        assert ((user_id, user_id, entry), 2, 1, 1) == (
            (report.problems[0].user_id, report.problems[0].key, report.problems[0].problem),
            report.checked, report.accounts, report.released,
        )  # fmt: skip
        assert [Decimal("55.00"), Decimal("10.00")] == [
            ledger.get_user_balance(u).amount for u in (user_id, next_id)
        ]

    def test_an_active_hold_whose_entry_was_removed_is_refused_not_retried(
        self, ledger: Ledger, make_ledger: Any
    ) -> None:
        """Capture (by the ledger that knows the hold) and void (by one that reads it first)
        raise UnreadableRecord naming the missing entry; the hold stays active."""
        user_id, hold_id = unique("holder"), unique("h")
        ledger.create_user(user_id, balance="100")
        ledger.hold(idempotency_key=hold_id, user_id=user_id, amount="10")
        ledger.botocore_client.update_item(
            TableName=ledger.table_names[0], Key={"userId": {"S": user_id}},
            UpdateExpression="REMOVE #e", ExpressionAttributeNames={"#e": f"hold:{hold_id}"},
        )  # fmt: skip
        other = make_ledger(table_prefix=ledger.settings.table_prefix)
        calls = [
            lambda: ledger.capture(idempotency_key=unique("c"), hold_id=hold_id),
            lambda: other.void(idempotency_key=unique("v"), hold_id=hold_id),
        ]
        problems = []
        for call in calls:
            with pytest.raises(UnreadableRecord) as caught:
                call()
            problems.append((caught.value.key, caught.value.problem))
        missing = (user_id, f"hold:{hold_id} is missing, its hold's record has 10.00 remaining")
        assert ([missing] * 2, "active") == (problems, ledger.get_hold(hold_id).status)


class TestReconcileArguments:
    def test_a_plain_string_is_one_user(self, fresh_ledger: Ledger) -> None:
        """reconcile('alice') checks alice, not the users 'a', 'l', 'i', 'c', 'e'."""
        fresh_ledger.seed()
        report = fresh_ledger.reconcile("alice")
        assert (True, 1) == (report.ok, report.checked)

    def test_bytes_are_refused(self, fresh_ledger: Ledger) -> None:
        """reconcile(b'alice') is a ValidationError on user_ids."""
        with pytest.raises(ValidationError) as caught:
            fresh_ledger.reconcile(b"alice")  # type: ignore[arg-type]
        assert "user_ids" == caught.value.field

    def test_sync_and_async_reconcile_and_expire_holds_read_user_ids_alike(
        self, fresh_ledger: Ledger
    ) -> None:
        """A str is one user, a user named twice is checked once, and anything but a str or
        an iterable of str is a ValidationError on user_ids: for reconcile and expire_holds,
        on the Ledger and the AsyncLedger alike (expire_holds('alice') once released the
        holds of users 'a', 'l', ...)."""
        fresh_ledger.seed()
        aledger = AsyncLedger(fresh_ledger)
        operations: dict[str, Callable[[object], Any]] = {
            "reconcile": fresh_ledger.reconcile,
            "expire_holds": fresh_ledger.expire_holds,
            "async reconcile": lambda ids: asyncio.run(aledger.reconcile(ids)),  # type: ignore[arg-type]
            "async expire_holds": lambda ids: asyncio.run(aledger.expire_holds(ids)),  # type: ignore[arg-type]
        }
        seen = {}
        for name, operation in operations.items():
            checked = [operation(ids).checked for ids in ("alice", ["alice", "bob", "alice"])]
            fields = []
            for bad in (5, b"alice", [5]):
                with pytest.raises(ValidationError) as caught:
                    operation(bad)
                fields.append(caught.value.field)
            seen[name] = (checked, fields)
        assert {name: ([1, 2], ["user_ids"] * 3) for name in operations} == seen


def _forge(*fields: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(fields)).encode()).decode()


def _long_id(tail: str) -> str:
    """255 characters: four-byte ones (U+1D11E), then ``tail``."""
    return "\U0001d11e" * (255 - len(tail)) + tail


class TestCursors:
    @pytest.mark.parametrize(
        "cursor",
        [
            base64.urlsafe_b64encode(b"[" * 100_000).decode(),  # RecursionError before
            base64.urlsafe_b64encode(b"[" * 1_000).decode(),
            "x" * 5000,
            _forge("h2", "{user}", "not a time", "2026-01-02T03:04:05", "000000000", "k"),
            _forge("h2", "{user}", "2026-01-02T03:04:05Z", "2026-01-02T03:04:05", "12", "k"),
            _forge("h2", "{user}", "2026-01-02T03:04:05Z", "2026-01-02T03:04:05", "000000000", ""),
            _forge("h2", "{user}", "2026-01-02T03:04:05Z", "2026-01-02T03:04:05", "000000000",
                   "k\ud800"),  # a lone surrogate no stored key holds
            _forge("h1", "{user}", "2026-01-02T03:04:05Z", "2026-01-02T03:04:05", "000000000", "k"),
            _forge("h2", "someone-else", "2026-01-02T03:04:05Z", "2026-01-02T03:04:05",
                   "000000000", "k"),
        ],
    )  # fmt: skip
    def test_malformed_or_foreign_cursors_are_validation_errors(
        self, ledger: Ledger, cursor: str
    ) -> None:
        """Oversized, nested, ill-typed and other users' cursors are ValidationErrors on cursor."""
        user_id = unique("cur")
        ledger.create_user(user_id)
        with pytest.raises(ValidationError) as caught:
            ledger.history(user_id, cursor=cursor.replace("{user}", user_id))
        assert "cursor" == caught.value.field

    def test_a_forged_well_formed_cursor_only_positions_within_the_users_own_history(
        self, ledger: Ledger
    ) -> None:
        """A hand-made cursor for this user reads its own entries older than it, nothing else."""
        user_id, other = unique("own"), unique("other")
        for who in (user_id, other):
            put_user(ledger, who)
            put_record(ledger, f"{who}-old", who, "1", timestamp="2026-01-01T00:00:00Z")
            put_record(ledger, f"{who}-new", who, "1", timestamp="2026-01-03T00:00:00Z")
        cursor = _forge("h2", user_id, "2026-01-02T00:00:00Z", "2026-01-02T00:00:00",
                        "000000000", "zzz")  # fmt: skip
        page = ledger.history(user_id, cursor=cursor)
        assert ([f"{user_id}-old"], None) == (
            [e.idempotency_key for e in page.items], page.next_cursor,
        )  # fmt: skip

    def test_ids_and_keys_of_255_characters_of_any_script_page_with_short_cursors(
        self, ledger: Ledger
    ) -> None:
        """A user and keys of 255 four-byte characters: every entry once, one per page, each
        cursor at most 2,048 characters (the README's bound for such keys)."""
        user_id = _long_id(unique("u"))
        ledger.create_user(user_id)
        keys = [_long_id(unique(f"k{n}")) for n in range(3)]
        for key in keys:
            ledger.transact(idempotency_key=key, user_id=user_id, amount="1", type="credit")
        seen, longest, cursor = [], 0, None
        for _ in range(4):
            page = ledger.history(user_id, limit=1, cursor=cursor)
            seen += [entry.idempotency_key for entry in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
            longest = max(longest, len(cursor))
        assert (sorted(keys), True) == (sorted(seen), 1000 < longest <= 2048)

    def test_a_foreign_key_of_dynamodbs_2048_bytes_pages_with_a_cursor_under_4096(
        self, ledger: Ledger
    ) -> None:
        """Another client's records keyed with 2,048 bytes: each entry once, cursors within
        MAX_CURSOR_LENGTH (4,096)."""
        user_id = unique("fk")
        put_user(ledger, user_id)
        keys = [f"{n}{user_id}".ljust(2048, "k") for n in range(3)]
        for n, key in enumerate(keys):
            put_record(ledger, key, user_id, "1", timestamp=f"2026-01-02T03:04:0{n}Z")
        pages, cursor, longest = [], None, 0
        for _ in range(4):
            page = ledger.history(user_id, limit=1, cursor=cursor)
            pages.append([entry.idempotency_key for entry in page.items])
            cursor = page.next_cursor
            if cursor is None:
                break
            longest = max(longest, len(cursor))
        assert ([[key] for key in reversed(keys)], True) == (pages, 2048 < longest <= 4096)

    def test_history_of_an_unknown_user_is_user_not_found(self, ledger: Ledger) -> None:
        """An id with no account and no entries is UserNotFound, as for a balance read."""
        from dynaledger.errors import UserNotFound

        with pytest.raises(UserNotFound):
            ledger.history(unique("nobody"))


def test_own_timestamps_are_written_in_one_fixed_width_form(ledger: Ledger) -> None:
    """dynaledger writes microseconds and Z, so its own strings sort in time order."""
    user_id = unique("fmt")
    ledger.create_user(user_id)
    ledger.transact(idempotency_key=f"{user_id}-k", user_id=user_id, amount=1, type="credit")
    item = ledger.botocore_client.get_item(
        TableName=ledger.table_names[1], Key={"idempotencyKey": {"S": f"{user_id}-k"}}
    )["Item"]
    stamp = item["timestamp"]["S"]
    assert (27, "Z") == (len(stamp), stamp[-1])
    assert datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


class TestSharingAnotherServicesTables:
    """A deployment of the TypeScript service: its table names, its key attribute, its records."""

    @pytest.fixture
    def service_tables(self, dynamodb_endpoint: str) -> tuple[Ledger, str]:
        """``{prefix}UserTable`` and ``{prefix}TransactionTable`` made by the service's own script,
        holding what it writes: users without a balance, records keyed by idempotentKey with
        millisecond timestamps and no currency."""
        from dynaledger import TableLayout

        prefix = f"{unique('ts')}_"
        layout = TableLayout(
            users_table="UserTable",
            transactions_table="TransactionTable",
            idempotency_key_attribute="idempotentKey",
        )
        ledger = Ledger(dynamodb_endpoint, table_prefix=prefix, layout=layout)
        client = ledger.botocore_client
        for table, key in ((f"{prefix}UserTable", "userId"), (f"{prefix}TransactionTable",
                                                              "idempotentKey")):  # fmt: skip
            client.create_table(
                TableName=table, BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
            )  # fmt: skip
        client.put_item(TableName=f"{prefix}UserTable", Item={"userId": {"S": "player"}})
        # The service debited 5 and credited 10 on the house (95 -> 105), in one millisecond.
        for key, kind, amount in (("bet-1", "debit", "5"), ("win-1", "credit", "10")):
            client.put_item(
                TableName=f"{prefix}TransactionTable",
                Item={
                    "idempotentKey": {"S": key}, "userId": {"S": "house"},
                    "amount": {"N": amount}, "type": {"S": kind},
                    "timestamp": {"S": "2026-01-02T03:04:05.123Z"},
                },
            )  # fmt: skip
        client.put_item(
            TableName=f"{prefix}UserTable",
            Item={
                "userId": {"S": "house"},
                "balance": {"N": "105"},
                "openingBalance": {"N": "100"},
            },
        )
        ledger.migrate()
        return ledger, prefix

    def test_migrate_adopts_the_tables_and_adds_the_history_index(
        self, service_tables: tuple[Ledger, str]
    ) -> None:
        """The service's tables are kept (their items too) and gain userId-timestamp-index."""
        ledger, prefix = service_tables
        description = ledger.botocore_client.describe_table(TableName=f"{prefix}TransactionTable")
        table = description["Table"]
        assert (
            [{"AttributeName": "idempotentKey", "KeyType": "HASH"}],
            ["userId-timestamp-index"],
            2,
        ) == (
            table["KeySchema"],
            [index["IndexName"] for index in table.get("GlobalSecondaryIndexes", [])],
            ledger.botocore_client.scan(TableName=f"{prefix}TransactionTable")["Count"],
        )

    def test_balance_replay_conflict_history_and_reconcile(
        self, service_tables: tuple[Ledger, str]
    ) -> None:
        """The library reads and extends the service's data as if it had written it."""
        ledger, prefix = service_tables
        # A user the service wrote without a balance holds the opening balance.
        assert (Decimal("100.00"), True) == (
            ledger.get_user_balance("player").amount, ledger.get_user_balance("player").is_opening,
        )  # fmt: skip
        # The service's record replays (its currency is the account's); other fields conflict.
        replay = ledger.transact(idempotency_key="bet-1", user_id="house", amount=5, type="debit")
        assert (True, "USD", Decimal("105.00")) == (
            replay.replayed, replay.currency, ledger.get_user_balance("house").amount,
        )  # fmt: skip
        from dynaledger.errors import IdempotencyConflict

        with pytest.raises(IdempotencyConflict) as conflict:
            ledger.transact(idempotency_key="win-1", user_id="house", amount=11, type="credit")
        assert ("amount",) == conflict.value.fields
        # New movements land under the service's key attribute.
        ledger.transact(idempotency_key="bet-2", user_id="house", amount=1, type="debit")
        item = ledger.botocore_client.get_item(
            TableName=f"{prefix}TransactionTable", Key={"idempotentKey": {"S": "bet-2"}}
        )["Item"]
        assert {"S": "house"} == item["userId"]
        # History lists the service's records and the library's, newest first.
        keys = [entry.idempotency_key for entry in ledger.history("house").items]
        assert ["bet-2", "win-1", "bet-1"] == keys
        assert ledger.reconcile().ok

    def test_the_layout_comes_from_the_environment(self) -> None:
        """from_env reads DYNALEDGER_USERS_TABLE, ..._TRANSACTIONS_TABLE and the key attribute."""
        env = {
            "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:9",
            "DYNALEDGER_TABLE_PREFIX": "prod-",
            "DYNALEDGER_USERS_TABLE": "UserTable",
            "DYNALEDGER_TRANSACTIONS_TABLE": "TransactionTable",
            "DYNALEDGER_IDEMPOTENCY_KEY_ATTRIBUTE": "idempotentKey",
        }
        ledger = Ledger.from_env(env)
        assert (
            ("prod-UserTable", "prod-TransactionTable", "prod-SchemaMigrations"),
            "idempotentKey",
        ) == (ledger.table_names, ledger.layout.idempotency_key_attribute)

    @pytest.mark.parametrize(
        ("prefix", "kwargs", "field"),
        [
            ("", {"users_table": "ab"}, "users_table"),
            ("p-", {"transactions_table": "T" * 254}, "transactions_table"),
            ("my env ", {}, "table_prefix"),
        ],
    )
    def test_a_prefix_and_names_must_make_dynamodb_table_names(
        self, prefix: str, kwargs: dict[str, str], field: str
    ) -> None:
        """Prefix and name together are 3 to 255 of DynamoDB's characters: else a
        ValidationError naming the table or the prefix, before any request."""
        from dynaledger import TableLayout

        with pytest.raises(ValidationError) as caught:
            Ledger("http://127.0.0.1:9", table_prefix=prefix, layout=TableLayout(**kwargs))
        assert field == caught.value.field
        assert "ab" == TableLayout(users_table="ab").users_table  # a prefix may lengthen it

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"users_table": "bad name"}, "users_table"),
            ({"transactions_table": ""}, "transactions_table"),
            ({"idempotency_key_attribute": "userId"}, "idempotency_key_attribute"),
            ({"users_table": "Same", "transactions_table": "Same"}, "layout"),
        ],
    )
    def test_a_bad_layout_is_a_validation_error(self, kwargs: dict[str, str], field: str) -> None:
        """Table names follow DynamoDB's rule, differ, and the key is no other attribute."""
        from dynaledger import TableLayout

        with pytest.raises(ValidationError) as caught:
            TableLayout(**kwargs)
        assert field == caught.value.field

    @pytest.mark.parametrize(
        ("status", "problem"),
        [
            ("expired", "holdStatus 'expired' without expiresAt"),
            ("frozen", "holdStatus 'frozen' is not one of ('active', 'captured', 'voided', "
                       "'expired')"),
        ],
    )  # fmt: skip
    def test_a_hold_status_set_by_hand_is_refused_by_capture_void_and_the_hold_reads(
        self, ledger: Ledger, make_ledger: Any, status: str, problem: str
    ) -> None:
        """A hold without expiry set to 'expired', or to a state the ledger does not know:
        capture and void (from a ledger that reads it), get_hold and holds raise
        UnreadableRecord naming it (an 'expired' one without expiry was an AssertionError;
        the reads reported the state as it was, or left the hold out); nothing moves."""
        user_id, hold_id = unique("holder"), unique("h")
        ledger.create_user(user_id, balance="100")
        ledger.hold(idempotency_key=hold_id, user_id=user_id, amount="10")
        ledger.botocore_client.update_item(
            TableName=ledger.table_names[1], Key={"idempotencyKey": {"S": hold_id}},
            UpdateExpression="SET holdStatus = :s", ExpressionAttributeValues={":s": {"S": status}},
        )  # fmt: skip
        other = make_ledger(table_prefix=ledger.settings.table_prefix)
        problems = []
        for call in (other.capture, other.void):
            with pytest.raises(UnreadableRecord) as caught:
                call(idempotency_key=unique("c"), hold_id=hold_id)
            problems.append((caught.value.key, caught.value.problem))
        for read in (lambda: other.get_hold(hold_id), lambda: other.holds(user_id)):
            with pytest.raises(UnreadableRecord) as caught:
                read()
            problems.append((caught.value.key, caught.value.problem))
        assert [(hold_id, problem)] * 4 == problems
        balance = ledger.get_user_balance(user_id)
        assert (Decimal("90.00"), Decimal("10.00")) == (balance.amount, balance.held)

    @pytest.mark.parametrize("edit", ["deleted", "rewritten as a credit"])
    def test_an_account_naming_a_hold_no_record_stands_for_is_refused_by_holds(
        self, ledger: Ledger, edit: str
    ) -> None:
        """The account still holds hold:<id> but its record was deleted, or put back as a
        credit, by hand: holds() raises UnreadableRecord on the account, naming the entry
        (it left the hold out, while the balance's held still counted it)."""
        user_id, hold_id = unique("holder"), unique("h")
        ledger.create_user(user_id, balance="100")
        ledger.hold(idempotency_key=hold_id, user_id=user_id, amount="10")
        client, records = operator_client(ledger), ledger.table_names[1]
        key = {"idempotencyKey": {"S": hold_id}}
        if edit == "deleted":
            client.delete_item(TableName=records, Key=key)
        else:
            client.put_item(TableName=records, Item={
                **key, "userId": {"S": user_id}, "amount": {"N": "10"},
                "type": {"S": "credit"}, "timestamp": {"S": "2026-01-01T00:00:00Z"},
            })  # fmt: skip
        with pytest.raises(UnreadableRecord) as caught:
            ledger.holds(user_id)
        assert (ledger.table_names[0], user_id, f"hold:{hold_id} names no hold record") == (
            caught.value.table_name, caught.value.key, caught.value.problem,
        )  # fmt: skip
        assert Decimal("10.00") == ledger.get_user_balance(user_id).held
