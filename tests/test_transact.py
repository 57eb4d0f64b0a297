"""Credits and debits: exactly once per key, never below zero, exact sums, clear refusals."""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Callable
from decimal import Decimal, localcontext

import pytest

from dynaledger import EntryType, Ledger, Leg
from dynaledger.errors import (
    CurrencyMismatch,
    IdempotencyConflict,
    InsufficientFunds,
    UserNotFound,
    ValidationError,
)
from dynaledger.money import EXACT
from dynaledger.services.movements import Request
from tests.conftest import FAST_RETRY, scan_tables, unique


def _user(ledger: Ledger, balance: str | None = None, currency: str | None = None) -> str:
    user_id = unique("u")
    ledger.create_user(user_id, balance=balance, currency=currency)
    return user_id


class TestBalance:
    def test_a_user_with_a_balance_has_that_balance(self, ledger: Ledger) -> None:
        """The stored balance is returned exactly, with the account's currency."""
        user_id = _user(ledger, "42.10", "EUR")
        balance = ledger.get_user_balance(user_id)
        assert (user_id, Decimal("42.10"), "EUR", False) == (
            balance.user_id, balance.amount, balance.currency, balance.is_opening,
        )  # fmt: skip

    def test_a_user_without_a_balance_holds_100_usd_and_reading_writes_nothing(
        self, fresh_ledger: Ledger
    ) -> None:
        """The opening balance is shown, and the read leaves every table as it was."""
        user_id = _user(fresh_ledger)
        before = scan_tables(fresh_ledger)
        balance = fresh_ledger.get_user_balance(user_id)
        assert (Decimal("100.00"), "USD", True) == (
            balance.amount, balance.currency, balance.is_opening,
        )  # fmt: skip
        assert before == scan_tables(fresh_ledger)

    def test_an_unknown_user_raises_user_not_found(self, ledger: Ledger) -> None:
        """Reading a balance of an id nobody has is UserNotFound naming it."""
        with pytest.raises(UserNotFound, match="'nobody-here' does not exist"):
            ledger.get_user_balance("nobody-here")

    def test_the_opening_balance_is_configurable(self, make_ledger: Callable[..., Ledger]) -> None:
        """A ledger opened with another opening balance and currency applies them."""
        ledger = make_ledger(opening_balance="5000", default_currency="JPY")
        ledger.migrate()
        user_id = _user(ledger)
        assert (Decimal("5000"), "JPY") == (
            ledger.get_user_balance(user_id).amount, ledger.get_user_balance(user_id).currency,
        )  # fmt: skip


class TestCreditDebit:
    def test_credit_adds_and_returns_the_movement(self, ledger: Ledger) -> None:
        """A credit raises the balance by the amount and reports what it did."""
        user_id, key = _user(ledger, "10.00"), unique("k")
        result = ledger.transact(idempotency_key=key, user_id=user_id, amount="2.50", type="credit")
        assert (key, user_id, Decimal("2.50"), EntryType.CREDIT, "USD", False) == (
            result.idempotency_key, result.user_id, result.amount, result.type, result.currency,
            result.replayed,
        )  # fmt: skip
        assert "credit" == result.type
        assert result.timestamp.tzinfo is not None
        assert Decimal("12.50") == ledger.get_user_balance(user_id).amount

    def test_debit_subtracts(self, ledger: Ledger) -> None:
        """A debit lowers the balance by the amount; the enum works as the type too."""
        user_id = _user(ledger, "10.00")
        ledger.transact(
            idempotency_key=unique("k"), user_id=user_id, amount=4, type=EntryType.DEBIT
        )
        assert Decimal("6.00") == ledger.get_user_balance(user_id).amount

    def test_a_user_without_a_balance_starts_from_the_opening_balance(self, ledger: Ledger) -> None:
        """The first movement of a balance-less user applies to 100, so reads and writes agree."""
        user_id = _user(ledger)
        ledger.transact(idempotency_key=unique("k"), user_id=user_id, amount="30", type="debit")
        balance = ledger.get_user_balance(user_id)
        assert (Decimal("70.00"), False) == (balance.amount, balance.is_opening)

    def test_three_credits_of_ten_cents_make_thirty_cents(self, ledger: Ledger) -> None:
        """Sums are exact decimals end to end, through DynamoDB."""
        user_id = _user(ledger, "0")
        for _ in range(3):
            ledger.transact(idempotency_key=unique("k"), user_id=user_id, amount="0.10",
                            type="credit")  # fmt: skip
        assert Decimal("0.30") == ledger.get_user_balance(user_id).amount

    def test_a_debit_may_take_the_balance_to_exactly_zero(self, ledger: Ledger) -> None:
        """Zero is allowed; below zero is not."""
        user_id = _user(ledger, "7.77")
        ledger.transact(idempotency_key=unique("k"), user_id=user_id, amount="7.77", type="debit")
        assert Decimal("0.00") == ledger.get_user_balance(user_id).amount

    def test_an_unknown_user_is_refused_and_not_recorded(self, fresh_ledger: Ledger) -> None:
        """No record is kept for an unknown user: the key stays free."""
        key = unique("k")
        before = scan_tables(fresh_ledger)
        with pytest.raises(UserNotFound):
            fresh_ledger.transact(
                idempotency_key=key, user_id=unique("ghost"), amount="1", type="credit"
            )
        assert before == scan_tables(fresh_ledger)


class TestInsufficientFunds:
    def test_an_overdraft_is_refused_carrying_balance_and_amount(self, ledger: Ledger) -> None:
        """The error carries the balance and the amount; the balance is unchanged."""
        user_id = _user(ledger, "5.00")
        with pytest.raises(InsufficientFunds) as caught:
            ledger.transact(idempotency_key=unique("k"), user_id=user_id, amount="5.01",
                            type="debit")  # fmt: skip
        assert (user_id, Decimal("5.00"), Decimal("5.01")) == (
            caught.value.user_id, caught.value.balance, caught.value.amount,
        )  # fmt: skip
        assert Decimal("5.00") == ledger.get_user_balance(user_id).amount

    def test_an_overdraft_of_the_opening_balance_is_refused(self, ledger: Ledger) -> None:
        """A balance-less user cannot be debited more than the opening 100."""
        user_id = _user(ledger)
        with pytest.raises(InsufficientFunds) as caught:
            ledger.transact(idempotency_key=unique("k"), user_id=user_id, amount="100.01",
                            type="debit")  # fmt: skip
        assert Decimal("100.00") == caught.value.balance

    def test_a_rejection_is_final_for_its_key_even_after_a_credit(self, ledger: Ledger) -> None:
        """Replaying a refused key raises the same refusal without re-evaluating funds."""
        user_id, key = _user(ledger, "1.00"), unique("k")
        with pytest.raises(InsufficientFunds):
            ledger.transact(idempotency_key=key, user_id=user_id, amount="2", type="debit")
        ledger.transact(idempotency_key=unique("k"), user_id=user_id, amount="50", type="credit")
        with pytest.raises(InsufficientFunds) as caught:
            ledger.transact(idempotency_key=key, user_id=user_id, amount="2", type="debit")
        assert (Decimal("1.00"), Decimal("2.00")) == (caught.value.balance, caught.value.amount)
        assert Decimal("51.00") == ledger.get_user_balance(user_id).amount

    def test_a_rejection_is_not_history(self, ledger: Ledger) -> None:
        """Refused debits never appear in history."""
        user_id = _user(ledger, "1.00")
        with pytest.raises(InsufficientFunds):
            ledger.transact(idempotency_key=unique("k"), user_id=user_id, amount="2", type="debit")
        assert () == ledger.history(user_id).items


class TestIdempotency:
    def test_the_same_request_again_changes_nothing_and_replays(self, ledger: Ledger) -> None:
        """A repeat returns the stored outcome with replayed=True and its original timestamp."""
        user_id, key = _user(ledger, "10"), unique("k")
        first = ledger.transact(idempotency_key=key, user_id=user_id, amount="3", type="credit")
        again = ledger.transact(idempotency_key=key, user_id=user_id, amount="3.00", type="credit")
        assert (False, True) == (first.replayed, again.replayed)
        assert first.timestamp == again.timestamp
        assert Decimal("13.00") == ledger.get_user_balance(user_id).amount

    def test_a_replay_works_after_the_process_forgets_everything(
        self, ledger: Ledger, dynamodb_endpoint: str
    ) -> None:
        """A new Ledger object (a restarted process) still recognizes the key."""
        user_id, key = _user(ledger, "10"), unique("k")
        ledger.transact(idempotency_key=key, user_id=user_id, amount="3", type="debit")
        restarted = Ledger(dynamodb_endpoint, table_prefix=ledger.settings.table_prefix)
        again = restarted.transact(idempotency_key=key, user_id=user_id, amount="3", type="debit")
        assert again.replayed
        assert Decimal("7.00") == restarted.get_user_balance(user_id).amount

    @pytest.mark.parametrize(
        ("change", "fields"),
        [
            ({"amount": "4"}, ("amount",)),
            ({"type": "debit"}, ("type",)),
            ({"amount": "4", "type": "debit"}, ("amount", "type")),
            ({"currency": "EUR"}, ("currency",)),
        ],
    )
    def test_the_same_key_for_another_request_is_a_conflict_naming_fields(
        self, fresh_ledger: Ledger, change: dict[str, str], fields: tuple[str, ...]
    ) -> None:
        """Reusing a key with different parameters raises IdempotencyConflict, writing nothing."""
        user_id, key = _user(fresh_ledger, "10"), unique("k")
        fresh_ledger.transact(idempotency_key=key, user_id=user_id, amount="3", type="credit")
        before = scan_tables(fresh_ledger)
        request = {"idempotency_key": key, "user_id": user_id, "amount": "3", "type": "credit"}
        with pytest.raises(IdempotencyConflict) as caught:
            fresh_ledger.transact(**{**request, **change})  # type: ignore[arg-type]
        assert fields == caught.value.fields
        assert before == scan_tables(fresh_ledger)

    def test_the_same_key_for_another_user_is_a_conflict(self, ledger: Ledger) -> None:
        """The key identifies the movement: another account under it is refused."""
        first, second, key = _user(ledger, "10"), _user(ledger, "10"), unique("k")
        ledger.transact(idempotency_key=key, user_id=first, amount="3", type="credit")
        with pytest.raises(IdempotencyConflict) as caught:
            ledger.transact(idempotency_key=key, user_id=second, amount="3", type="credit")
        assert ("user_id",) == caught.value.fields
        assert Decimal("10.00") == ledger.get_user_balance(second).amount

    def test_racing_identical_requests_apply_once(self, ledger: Ledger) -> None:
        """Eight threads send the same request at once: one applies, seven replay."""
        user_id, key = _user(ledger, "100"), unique("k")
        barrier = threading.Barrier(8)
        replays: list[bool] = []
        lock = threading.Lock()

        def send() -> None:
            barrier.wait()
            result = ledger.transact(idempotency_key=key, user_id=user_id, amount="10",
                                     type="debit")  # fmt: skip
            with lock:
                replays.append(result.replayed)

        threads = [threading.Thread(target=send) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [False] + [True] * 7 == sorted(replays)
        assert Decimal("90.00") == ledger.get_user_balance(user_id).amount


class TestFingerprint:
    @staticmethod
    def reference(request: Request) -> str:
        """The fingerprint's definition: SHA-256 of the request's fields joined by U+001F,
        the amount without trailing zeros, a hold's timeout, then ``key=value`` per entry."""
        parts = [
            "v1", request.kind, request.user_id, request.counterparty_id or "",
            format(request.amount.normalize(EXACT), "f"), str(request.type), request.currency,
        ]  # fmt: skip
        if request.kind == "hold":
            parts.append(request.timeout or "")
        parts += [f"{key}={value}" for key, value in request.metadata]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()

    def test_fingerprint_follows_its_definition_over_random_requests(self) -> None:
        """3,000 random requests (amounts with and without trailing zeros, exponents,
        18 decimals, holds, transfers, metadata) get the digest the definition gives."""
        rng = random.Random(3)
        amounts = [
            "1.00",
            "0.5",
            "100",
            "1E+2",
            "7.50E+1",
            "10.0",
            "0.000000000000000001",
            "123456789012345.123456789012345678",
            "999999999999999.999999999999999999",
        ]
        amounts += [str(Decimal(rng.randint(1, 10**12)).scaleb(-rng.randint(-3, 18)))
                    for _ in range(100)]  # fmt: skip
        for _ in range(3000):
            request = Request(
                kind=rng.choice(["transact", "transfer", "hold"]), key="k",
                user_id=rng.choice(["u", "ü-1"]), amount=Decimal(rng.choice(amounts)),
                type=rng.choice(list(EntryType)), currency=rng.choice(["USD", "ETH"]),
                counterparty_id=rng.choice([None, "v"]), timeout=rng.choice([None, "1.5"]),
                metadata=tuple((f"k{n}", f"v{n}") for n in range(rng.randint(0, 2))),
            )  # fmt: skip
            assert self.reference(request) == request.fingerprint, request

    def test_every_digit_counts_whatever_the_callers_decimal_context(self) -> None:
        """33 significant digits (18 decimals) are all hashed, under a 6-digit context too:
        the digest does not depend on the context the caller happens to run in."""
        amount = Decimal("123456789012345.123456789012345678")
        request = Request(kind="transact", key="k", user_id="a", amount=amount,
                          type=EntryType.CREDIT, currency="ETH")  # fmt: skip
        expected = hashlib.sha256(
            b"v1\x1ftransact\x1fa\x1f\x1f123456789012345.123456789012345678\x1fcredit\x1fETH"
        ).hexdigest()
        with localcontext(prec=6):
            assert expected == request.fingerprint
        assert expected == request.fingerprint

    def test_a_stored_fingerprint_does_not_change_between_versions(self) -> None:
        """The digest of one credit, pinned: records written before and after agree."""
        request = Request(kind="transact", key="k", user_id="alice", amount=Decimal("12.50"),
                          type=EntryType.CREDIT, currency="USD")  # fmt: skip
        expected = hashlib.sha256(b"v1\x1ftransact\x1falice\x1f\x1f12.5\x1fcredit\x1fUSD")
        assert expected.hexdigest() == request.fingerprint


class TestAmountsAsTheyComeBack:
    def test_a_retry_finding_its_own_record_returns_the_amount_in_the_currencys_unit(
        self, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """DynamoDB trims trailing zeros from the numbers it returns ("10.5" for 10.50).
        When a retry finds the record its lost reply wrote, the result still shows 10.50."""
        from dynaledger.services import movements
        from dynaledger.services.records import load_transaction

        user_id, key = _user(ledger, "100"), unique("k")
        own = ledger.transact(idempotency_key=key, user_id=user_id, amount="10.50", type="credit")
        item = ledger.botocore_client.get_item(
            TableName=ledger.table_names[1], Key={"idempotencyKey": {"S": key}}
        )["Item"]
        item["amount"] = {"N": "10.5"}  # as DynamoDB returns it

        def found_own_record(ctx: object, request: object, raw: object) -> object:
            record = load_transaction(ledger._ctx, item)
            return movements._Outcome(record, "USD", replayed=False)

        monkeypatch.setattr(movements, "execute", found_own_record)
        again = ledger.transact(idempotency_key=key, user_id=user_id, amount="10.5",
                                type="credit")  # fmt: skip
        assert ("10.50", "10.50") == (str(own.amount), str(again.amount))

    def test_a_stored_negative_zero_balance_reads_as_zero(self, ledger: Ledger) -> None:
        """A balance another client wrote as -0 reads as 0.00, not -0.00."""
        user_id = unique("u")
        ledger.botocore_client.put_item(
            TableName=ledger.table_names[0],
            Item={"userId": {"S": user_id}, "balance": {"N": "-0"}},
        )
        assert "0.00" == str(ledger.get_user_balance(user_id).amount)

    def test_large_amounts_in_an_18_decimal_default_currency_need_no_currency_named(
        self, make_ledger: Callable[..., Ledger]
    ) -> None:
        """With ETH (18 decimals) as the default currency, 10**10 ETH credited and posted
        without naming the currency is 28 digits past the default decimal context: it is
        checked in the exact context, not refused with a raw decimal error."""
        eth = make_ledger(assets={"ETH": 18}, default_currency="ETH")
        eth.migrate()
        alice, bob = unique("alice"), unique("bob")
        eth.create_user(alice, balance="0")
        eth.create_user(bob, balance="0")
        credit = eth.transact(idempotency_key=unique("k"), user_id=alice, amount="10000000000",
                              type="credit")  # fmt: skip
        eth.post(idempotency_key=unique("p"), legs=[Leg(alice, "10000000000", "debit"),
                                                    Leg(bob, "10000000000", "credit")])  # fmt: skip
        assert Decimal("10000000000") == credit.amount
        assert Decimal("10000000000") == eth.get_user_balance(bob).amount


class TestCurrency:
    def test_an_account_in_another_currency_is_used_when_none_is_named(
        self, ledger: Ledger
    ) -> None:
        """With no currency argument the account's own currency applies, with its minor unit."""
        user_id = _user(ledger, "1000", "JPY")
        result = ledger.transact(idempotency_key=unique("k"), user_id=user_id, amount="250",
                                 type="debit")  # fmt: skip
        assert ("JPY", Decimal("250")) == (result.currency, result.amount)
        assert Decimal("750") == ledger.get_user_balance(user_id).amount

    def test_a_replay_without_a_currency_matches_a_foreign_account(self, ledger: Ledger) -> None:
        """Regression: replaying a EUR debit named without currency replays, not a conflict."""
        user_id, key = _user(ledger, "10", "EUR"), unique("k")
        ledger.transact(idempotency_key=key, user_id=user_id, amount="4", type="debit")
        again = ledger.transact(idempotency_key=key, user_id=user_id, amount="4", type="debit")
        assert (True, "EUR") == (again.replayed, again.currency)

    def test_a_refusal_without_a_currency_replays_on_a_foreign_account(
        self, ledger: Ledger
    ) -> None:
        """Regression (found by the state machine): a refused EUR debit stays refused on replay."""
        user_id, key = _user(ledger, "1", "EUR"), unique("k")
        for _ in range(2):
            with pytest.raises(InsufficientFunds):
                ledger.transact(idempotency_key=key, user_id=user_id, amount="4", type="debit")

    def test_the_account_currency_decides_the_decimals_allowed(self, ledger: Ledger) -> None:
        """Yen have no minor unit: 1.5 JPY is refused, and nothing is written."""
        user_id = _user(ledger, "1000", "JPY")
        with pytest.raises(ValidationError, match="more decimals than JPY allows"):
            ledger.transact(idempotency_key=unique("k"), user_id=user_id, amount="1.5",
                            type="debit")  # fmt: skip
        assert Decimal("1000") == ledger.get_user_balance(user_id).amount

    def test_a_currency_argument_that_differs_is_a_mismatch(self, fresh_ledger: Ledger) -> None:
        """Naming USD for a EUR account raises CurrencyMismatch and writes nothing."""
        user_id = _user(fresh_ledger, "10", "EUR")
        before = scan_tables(fresh_ledger)
        with pytest.raises(CurrencyMismatch) as caught:
            fresh_ledger.transact(idempotency_key=unique("k"), user_id=user_id, amount="1",
                            type="credit", currency="USD")  # fmt: skip
        assert (user_id, "USD", "EUR") == (
            caught.value.user_id, caught.value.expected, caught.value.actual,
        )  # fmt: skip
        assert before == scan_tables(fresh_ledger)

    def test_naming_the_default_currency_matches_an_account_without_one(
        self, ledger: Ledger
    ) -> None:
        """An account with no stored currency holds USD."""
        user_id = _user(ledger, "10")
        result = ledger.transact(idempotency_key=unique("k"), user_id=user_id, amount="1",
                                 type="credit", currency="USD")  # fmt: skip
        assert "USD" == result.currency


class TestRacingDebits:
    def test_racing_debits_never_overdraw_and_history_adds_up(
        self, make_ledger: Callable[..., Ledger]
    ) -> None:
        """20 threads debit 7 from 100: 14 apply, the rest are refused, and nothing goes below 0."""
        ledger = make_ledger(retry=FAST_RETRY)
        ledger.migrate()
        user_id = _user(ledger)
        barrier = threading.Barrier(20)
        outcomes: list[bool] = []
        lock = threading.Lock()

        def debit(n: int) -> None:
            barrier.wait()
            try:
                ledger.transact(idempotency_key=f"race-{n}", user_id=user_id, amount="7",
                                type="debit")  # fmt: skip
                applied = True
            except InsufficientFunds:
                applied = False
            with lock:
                outcomes.append(applied)

        threads = [threading.Thread(target=debit, args=(n,)) for n in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        balance = ledger.get_user_balance(user_id).amount
        history = ledger.history(user_id, limit=1000).items
        assert (14, Decimal("2.00")) == (sum(outcomes), balance)
        assert Decimal("100") - sum(e.amount for e in history) == balance
        assert ledger.reconcile().ok
