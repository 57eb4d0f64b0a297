"""Credit limits: an account may go down to minus its limit and no further, in the same write.

Also the largest balance: a credit past it is refused in the same write.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from dynaledger import CreditLimitResult, Ledger
from dynaledger.errors import (
    IdempotencyConflict,
    InsufficientFunds,
    UserNotFound,
    ValidationError,
)
from dynaledger.money import EXACT, Currencies
from tests.conftest import RequestCounter, unique

START = datetime(2031, 6, 1, 12, 0, tzinfo=timezone.utc)


def _debit(ledger: Ledger, user: str, amount: str, key: str | None = None) -> object:
    return ledger.transact(
        idempotency_key=key or unique("d"), user_id=user, amount=amount, type="debit"
    )


def _credit(ledger: Ledger, user: str, amount: str, **kwargs: object) -> object:
    return ledger.transact(
        idempotency_key=unique("c"), user_id=user, amount=amount, type="credit", **kwargs
    )


def _account(ledger: Ledger, balance: str = "10", limit: str = "50", **kwargs: object) -> str:
    user = unique("lim")
    ledger.create_user(user, balance=balance, credit_limit=limit, **kwargs)  # type: ignore[arg-type]
    return user


class TestFloor:
    def test_a_debit_may_take_the_balance_down_to_minus_the_limit_exactly(
        self, ledger: Ledger
    ) -> None:
        """Balance 10, limit 50: a debit of 60 leaves -50; one more cent is refused."""
        user = _account(ledger)
        _debit(ledger, user, "60")
        assert Decimal("-50.00") == ledger.get_user_balance(user).amount
        with pytest.raises(InsufficientFunds) as refused:
            _debit(ledger, user, "0.01")
        assert (Decimal("-50.00"), Decimal("50.00"), Decimal("0.01")) == (
            refused.value.balance,
            refused.value.credit_limit,
            refused.value.amount,
        )
        assert "has -50.00 USD and a credit limit of 50.00 USD, 0.01 USD requested" in str(
            refused.value
        )

    def test_without_a_limit_the_floor_is_zero_and_the_message_unchanged(
        self, ledger: Ledger
    ) -> None:
        """An account created with no limit has limit 0: balance 10 cannot pay 10.01."""
        user = unique("nolim")
        ledger.create_user(user, balance="10")
        with pytest.raises(InsufficientFunds) as refused:
            _debit(ledger, user, "10.01")
        assert Decimal(0) == refused.value.credit_limit
        assert f"insufficient funds: user {user!r} has 10.00 USD, 10.01 USD requested" == str(
            refused.value
        )
        assert Decimal(0) == ledger.get_user_balance(user).credit_limit

    def test_a_transfer_and_a_hold_use_the_same_floor(self, ledger: Ledger) -> None:
        """A transfer of 30 and a hold of 30 from 10 with limit 50 pass; the next cent does not."""
        payer, payee = _account(ledger), _account(ledger, limit="0")
        ledger.transfer(idempotency_key=unique("t"), from_user_id=payer, to_user_id=payee,
                        amount="30")  # fmt: skip
        ledger.hold(idempotency_key=unique("h"), user_id=payer, amount="30", timeout=60)
        balance = ledger.get_user_balance(payer)
        assert (Decimal("-50.00"), Decimal("30.00")) == (balance.amount, balance.held)
        with pytest.raises(InsufficientFunds):
            ledger.transfer(idempotency_key=unique("t"), from_user_id=payer, to_user_id=payee,
                            amount="0.01")  # fmt: skip
        with pytest.raises(InsufficientFunds):
            ledger.hold(idempotency_key=unique("h"), user_id=payer, amount="0.01", timeout=60)
        assert Decimal("40.00") == ledger.get_user_balance(payee).amount

    def test_a_refusal_replays_with_the_limit_it_was_refused_under(self, ledger: Ledger) -> None:
        """The recorded refusal names the limit then in force, even after the limit is raised."""
        user = _account(ledger, balance="0", limit="5")
        key = unique("d")
        with pytest.raises(InsufficientFunds):
            _debit(ledger, user, "6", key)
        ledger.set_credit_limit(idempotency_key=unique("l"), user_id=user, limit="100")
        with pytest.raises(InsufficientFunds) as replayed:
            _debit(ledger, user, "6", key)
        assert (Decimal("0.00"), Decimal("5.00")) == (
            replayed.value.balance,
            replayed.value.credit_limit,
        )

    def test_expired_holds_are_released_by_the_same_floor_rule(
        self, make_ledger: object, dynamodb_endpoint: str, session_prefix: str
    ) -> None:
        """Balance 0, limit 10, a hold of 10 expires: a debit of 20 releases it and leaves -10."""
        clock = [START]
        ledger = Ledger(dynamodb_endpoint, table_prefix=session_prefix, clock=lambda: clock[0])
        user = _account(ledger, balance="10", limit="10")
        ledger.hold(idempotency_key=unique("h"), user_id=user, amount="10", timeout=30)
        assert Decimal("0.00") == ledger.get_user_balance(user).amount
        with pytest.raises(InsufficientFunds):
            _debit(ledger, user, "10.01")
        clock[0] = START + timedelta(seconds=31)
        _debit(ledger, user, "20")
        balance = ledger.get_user_balance(user)
        assert (Decimal("-10.00"), Decimal("0.00")) == (balance.amount, balance.held)
        assert () == ledger.reconcile([user]).mismatches


class TestSetCreditLimit:
    def test_setting_a_limit_applies_to_the_next_debit_and_shows_in_balance_and_history(
        self, ledger: Ledger
    ) -> None:
        """Balance 0: a debit of 5 is refused; limit 5 set, it passes; history has the change."""
        user = unique("set")
        ledger.create_user(user, balance="0")
        with pytest.raises(InsufficientFunds):
            _debit(ledger, user, "5")
        key = unique("l")
        result = ledger.set_credit_limit(idempotency_key=key, user_id=user, limit="5")
        assert isinstance(result, CreditLimitResult)
        assert (key, user, Decimal("5.00"), "USD", False) == (
            result.idempotency_key, result.user_id, result.credit_limit, result.currency,
            result.replayed,
        )  # fmt: skip
        _debit(ledger, user, "5")
        balance = ledger.get_user_balance(user)
        assert (Decimal("-5.00"), Decimal("5.00")) == (balance.amount, balance.credit_limit)
        entries = ledger.history(user, limit=10).items
        assert {("limit", Decimal("5.00"), "credit"), (None, Decimal("5.00"), "debit")} == {
            (e.kind, e.amount, e.type.value) for e in entries
        }

    def test_a_replay_returns_the_stored_outcome_and_a_reused_key_names_its_fields(
        self, ledger: Ledger
    ) -> None:
        """Same key and limit: replayed=True with the first timestamp; other user and limit:
        IdempotencyConflict naming both; the limit is unchanged."""
        user, other = _account(ledger, limit="0"), _account(ledger, limit="0")
        key = unique("l")
        first = ledger.set_credit_limit(idempotency_key=key, user_id=user, limit="7")
        again = ledger.set_credit_limit(idempotency_key=key, user_id=user, limit="7.00")
        assert (True, first.timestamp, Decimal("7.00")) == (
            again.replayed, again.timestamp, again.credit_limit,
        )  # fmt: skip
        with pytest.raises(IdempotencyConflict) as conflict:
            ledger.set_credit_limit(idempotency_key=key, user_id=other, limit="8")
        assert ("user_id", "limit") == conflict.value.fields
        with pytest.raises(IdempotencyConflict) as kind:
            _debit(ledger, user, "1", key)
        assert "kind" in kind.value.fields
        assert Decimal("0.00") == ledger.get_user_balance(other).credit_limit

    def test_lowering_below_the_debt_is_allowed_and_only_blocks_debits(
        self, ledger: Ledger
    ) -> None:
        """At -40 with limit 50, limit 10: debits refused, credits still go, balance kept."""
        user = _account(ledger, balance="10")
        _debit(ledger, user, "50")
        ledger.set_credit_limit(idempotency_key=unique("l"), user_id=user, limit="10")
        with pytest.raises(InsufficientFunds) as refused:
            _debit(ledger, user, "0.01")
        assert (Decimal("-40.00"), Decimal("10.00")) == (
            refused.value.balance,
            refused.value.credit_limit,
        )
        _credit(ledger, user, "35")
        with pytest.raises(InsufficientFunds):
            _debit(ledger, user, "5.01")
        _debit(ledger, user, "5")
        assert Decimal("-10.00") == ledger.get_user_balance(user).amount

    def test_a_limit_set_on_an_account_on_its_opening_balance_counts_from_it(
        self, ledger: Ledger
    ) -> None:
        """No stored balance (opening 100), limit 20: 120 can be debited, not 120.01."""
        user = unique("open")
        ledger.create_user(user)
        ledger.set_credit_limit(idempotency_key=unique("l"), user_id=user, limit="20")
        with pytest.raises(InsufficientFunds):
            _debit(ledger, user, "120.01")
        _debit(ledger, user, "120")
        assert Decimal("-20.00") == ledger.get_user_balance(user).amount

    def test_limit_zero_restores_the_plain_floor(self, ledger: Ledger) -> None:
        """Limit 50 then 0: from 10, a debit of 10.01 is refused and 10 passes."""
        user = _account(ledger)
        ledger.set_credit_limit(idempotency_key=unique("l"), user_id=user, limit="0")
        with pytest.raises(InsufficientFunds):
            _debit(ledger, user, "10.01")
        _debit(ledger, user, "10")
        assert Decimal("0.00") == ledger.get_user_balance(user).credit_limit

    @pytest.mark.parametrize(
        ("limit", "rule"),
        [
            (Decimal("-1"), "must not be negative, got -1"),
            ("0.001", "0.001 has more decimals than USD allows (2)"),
            ("1e16", "must be at most 1000000000000000"),
            ("abc", "'abc' is not a decimal number"),
        ],
    )
    def test_a_bad_limit_is_a_validation_error_and_writes_nothing(
        self, ledger: Ledger, limit: object, rule: str
    ) -> None:
        """Negative, too many decimals, past the largest amount, not a number: refused."""
        user = _account(ledger, limit="3")
        key = unique("l")
        with pytest.raises(ValidationError) as bad:
            ledger.set_credit_limit(idempotency_key=key, user_id=user, limit=limit)
        assert "limit" == bad.value.field
        assert rule in bad.value.rule
        with pytest.raises(ValidationError) as created:
            ledger.create_user(unique("bad"), credit_limit=limit)
        assert "credit_limit" == created.value.field
        assert Decimal("3.00") == ledger.get_user_balance(user).credit_limit
        assert (
            ledger.set_credit_limit(idempotency_key=key, user_id=user, limit="4").replayed is False
        )

    def test_a_limit_is_judged_by_the_accounts_currency(self, fresh_ledger: Ledger) -> None:
        """A JPY account takes limit 100 (no decimals), refuses 0.5; a BHD account takes 0.125."""
        yen, dinar = unique("jpy"), unique("bhd")
        fresh_ledger.create_user(yen, currency="JPY", balance="0")
        fresh_ledger.create_user(dinar, currency="BHD", balance="0")
        assert (
            Decimal(100)
            == fresh_ledger.set_credit_limit(
                idempotency_key=unique("l"), user_id=yen, limit="100"
            ).credit_limit
        )
        with pytest.raises(ValidationError) as bad:
            fresh_ledger.set_credit_limit(idempotency_key=unique("l"), user_id=yen, limit="0.5")
        assert "0.5 has more decimals than JPY allows (0)" == bad.value.rule
        result = fresh_ledger.set_credit_limit(
            idempotency_key=unique("l"), user_id=dinar, limit="0.125"
        )
        assert ("BHD", Decimal("0.125")) == (result.currency, result.credit_limit)
        fresh_ledger.transact(idempotency_key=unique("d"), user_id=dinar, amount="0.125",
                              type="debit", currency="BHD")  # fmt: skip
        assert Decimal("-0.125") == fresh_ledger.get_user_balance(dinar).amount

    def test_a_limit_wrong_in_every_currency_is_refused_before_any_request(
        self, ledger: Ledger, count_requests: Callable[[Ledger], RequestCounter]
    ) -> None:
        """A negative limit for an unknown user: ValidationError on ``limit``, 0 requests."""
        counter = count_requests(ledger)
        with pytest.raises(ValidationError) as bad:
            ledger.set_credit_limit(idempotency_key=unique("l"), user_id=unique("ghost"),
                                    limit=Decimal("-1"))  # fmt: skip
        assert ("limit", 0) == (bad.value.field, counter.total)

    def test_an_unknown_user_is_refused_and_nothing_is_written(self, ledger: Ledger) -> None:
        """UserNotFound; the key stays usable for an existing user."""
        key = unique("l")
        with pytest.raises(UserNotFound):
            ledger.set_credit_limit(idempotency_key=key, user_id=unique("ghost"), limit="1")
        user = _account(ledger, limit="0")
        assert not ledger.set_credit_limit(idempotency_key=key, user_id=user, limit="1").replayed


class TestReconcile:
    def test_reconcile_is_exact_with_negative_balances_and_limit_entries(
        self, ledger: Ledger
    ) -> None:
        """Debits into debt, limit changes and a transfer: no mismatch; the limit is not money."""
        user, other = _account(ledger, balance="0.01"), _account(ledger, limit="0")
        _debit(ledger, user, "50.01")
        ledger.set_credit_limit(idempotency_key=unique("l"), user_id=user, limit="60")
        ledger.transfer(idempotency_key=unique("t"), from_user_id=user, to_user_id=other,
                        amount="9.99")  # fmt: skip
        assert Decimal("-59.99") == ledger.get_user_balance(user).amount
        report = ledger.reconcile([user, other])
        assert (2, (), ()) == (report.checked, report.mismatches, report.problems)


class TestLargestBalance:
    def test_a_credit_past_the_largest_balance_is_refused_naming_account_and_limit(
        self, ledger: Ledger
    ) -> None:
        """At the largest USD balance less 1, a credit of 1 passes and one more cent does not."""
        largest = Currencies().max_balance("USD")
        user = unique("big")
        ledger.create_user(user, balance=EXACT.subtract(largest, Decimal(1)))
        _credit(ledger, user, "1")
        with pytest.raises(ValidationError) as past:
            _credit(ledger, user, "0.01")
        assert "amount" == past.value.field
        assert (
            f"would take user {user!r}'s balance past the largest USD balance, {largest:f}"
            == past.value.rule
        )
        assert largest == ledger.get_user_balance(user).amount

    def test_an_account_without_a_limit_started_below_the_opening_balance_takes_credits(
        self, ledger_factory: Callable[..., Ledger]
    ) -> None:
        """With the opening balance at USD's largest, an account created at 0 (no limit)
        takes three credits of 0.01: its ``available``, which only a limit makes read, never
        passes 38 digits (it did, from the opening balance, and DynamoDB refused the write).
        A limit of 10 set then makes 10.03 spendable, to the cent."""
        largest = Currencies().max_balance("USD")
        rich = ledger_factory(opening_balance=largest)
        user = unique("low")
        rich.create_user(user, balance="0")
        for _ in range(3):
            _credit(rich, user, "0.01")
        rich.set_credit_limit(idempotency_key=unique("l"), user_id=user, limit="10")
        _debit(rich, user, "10.03")
        with pytest.raises(InsufficientFunds):
            _debit(rich, user, "0.01")
        assert Decimal("-10.00") == rich.get_user_balance(user).amount

    def test_a_transfer_past_the_payees_largest_balance_is_refused(self, ledger: Ledger) -> None:
        """The payee's ceiling is checked in the same write; the payer keeps its money."""
        largest = Currencies().max_balance("USD")
        payer, payee = unique("p"), unique("big")
        ledger.create_user(payer, balance="5")
        ledger.create_user(payee, balance=largest)
        with pytest.raises(ValidationError) as past:
            ledger.transfer(idempotency_key=unique("t"), from_user_id=payer, to_user_id=payee,
                            amount="1")  # fmt: skip
        assert payee in past.value.rule
        assert Decimal("5.00") == ledger.get_user_balance(payer).amount

    def test_on_an_account_with_a_limit_balance_plus_limit_stays_within_the_largest(
        self, ledger: Ledger
    ) -> None:
        """With limit 10 the ceiling applies to balance + limit (``available``, one number)."""
        largest = Currencies().max_balance("USD")
        user = unique("big")
        ledger.create_user(user, balance=EXACT.subtract(largest, Decimal(11)), credit_limit="10")
        _credit(ledger, user, "1")
        with pytest.raises(ValidationError):
            _credit(ledger, user, "0.01")
        assert EXACT.subtract(largest, Decimal(10)) == ledger.get_user_balance(user).amount

    def test_a_limit_that_would_take_available_past_the_largest_balance_is_refused(
        self, ledger: Ledger
    ) -> None:
        """At the largest balance less 5: creating it with limit 6, or setting limit 6 on it,
        is a ValidationError (``available`` would pass 38 digits); limit 5 fits exactly."""
        largest = Currencies().max_balance("USD")
        near = EXACT.subtract(largest, Decimal(5))
        with pytest.raises(ValidationError) as created:
            ledger.create_user(unique("big"), balance=near, credit_limit="6")
        user = unique("big")
        ledger.create_user(user, balance=near)
        with pytest.raises(ValidationError) as set_:
            ledger.set_credit_limit(idempotency_key=unique(), user_id=user, limit="6")
        assert ("credit_limit", "limit") == (created.value.field, set_.value.field)
        ledger.set_credit_limit(idempotency_key=unique(), user_id=user, limit="5")
        balance = ledger.get_user_balance(user)
        assert (near, Decimal("5.00")) == (balance.amount, balance.credit_limit)
