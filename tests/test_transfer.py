"""Transfers: one transaction debits one account and credits another, once per key."""

from __future__ import annotations

from decimal import Decimal

import pytest

from dynaledger import EntryType, Ledger
from dynaledger.errors import (
    CurrencyMismatch,
    IdempotencyConflict,
    InsufficientFunds,
    UserNotFound,
    ValidationError,
)
from tests.conftest import scan_tables, unique


def _pair(
    ledger: Ledger, a: str = "50", b: str = "5", currency: str | None = None
) -> tuple[str, str]:
    payer, payee = unique("payer"), unique("payee")
    ledger.create_user(payer, balance=a, currency=currency)
    ledger.create_user(payee, balance=b, currency=currency)
    return payer, payee


class TestTransfer:
    def test_moves_money_between_accounts_in_one_step(self, ledger: Ledger) -> None:
        """The payer loses exactly what the payee gains; the result says what moved."""
        payer, payee = _pair(ledger)
        key = unique("t")
        result = ledger.transfer(idempotency_key=key, from_user_id=payer, to_user_id=payee,
                                 amount="12.34")  # fmt: skip
        assert (key, payer, payee, Decimal("12.34"), "USD", False) == (
            result.idempotency_key, result.from_user_id, result.to_user_id, result.amount,
            result.currency, result.replayed,
        )  # fmt: skip
        assert (Decimal("37.66"), Decimal("17.34")) == (
            ledger.get_user_balance(payer).amount, ledger.get_user_balance(payee).amount,
        )  # fmt: skip

    def test_is_visible_in_both_histories_with_the_counterparty(self, ledger: Ledger) -> None:
        """The payer's history shows a debit to the payee, the payee's a credit from the payer."""
        payer, payee = _pair(ledger)
        key = unique("t")
        ledger.transfer(idempotency_key=key, from_user_id=payer, to_user_id=payee, amount="1")
        (out,) = ledger.history(payer).items
        (into,) = ledger.history(payee).items
        assert (key, EntryType.DEBIT, payee, Decimal("1.00")) == (
            out.idempotency_key, out.type, out.counterparty_id, out.amount,
        )  # fmt: skip
        assert (key, EntryType.CREDIT, payer, Decimal("1.00")) == (
            into.idempotency_key, into.type, into.counterparty_id, into.amount,
        )  # fmt: skip
        assert out.timestamp == into.timestamp

    def test_replays_without_moving_money_twice(self, ledger: Ledger) -> None:
        """The same transfer again returns replayed=True and changes no balance."""
        payer, payee = _pair(ledger)
        key = unique("t")
        first = ledger.transfer(idempotency_key=key, from_user_id=payer, to_user_id=payee,
                                amount="10")  # fmt: skip
        again = ledger.transfer(idempotency_key=key, from_user_id=payer, to_user_id=payee,
                                amount="10")  # fmt: skip
        assert (True, first.timestamp) == (again.replayed, again.timestamp)
        assert Decimal("40.00") == ledger.get_user_balance(payer).amount

    def test_reusing_its_key_with_another_payee_is_a_conflict(self, ledger: Ledger) -> None:
        """A different payee under the same key is refused, naming to_user_id."""
        payer, payee = _pair(ledger)
        other = unique("other")
        ledger.create_user(other)
        key = unique("t")
        ledger.transfer(idempotency_key=key, from_user_id=payer, to_user_id=payee, amount="1")
        with pytest.raises(IdempotencyConflict) as caught:
            ledger.transfer(idempotency_key=key, from_user_id=payer, to_user_id=other, amount="1")
        assert ("to_user_id",) == caught.value.fields

    def test_a_transfer_key_cannot_be_reused_for_a_credit(self, fresh_ledger: Ledger) -> None:
        """A transfer's key used for a plain credit is a conflict on kind, nothing written."""
        payer, payee = _pair(fresh_ledger)
        key = unique("t")
        fresh_ledger.transfer(idempotency_key=key, from_user_id=payer, to_user_id=payee, amount="1")
        before = scan_tables(fresh_ledger)
        with pytest.raises(IdempotencyConflict) as caught:
            fresh_ledger.transact(idempotency_key=key, user_id=payer, amount="1", type="debit")
        assert "kind" in caught.value.fields
        assert before == scan_tables(fresh_ledger)

    def test_no_caller_key_can_collide_with_a_transfers_credit_leg(self, ledger: Ledger) -> None:
        """The leg's record key holds a control character, which caller keys may not contain."""
        payer, payee = _pair(ledger)
        key = unique("t")
        ledger.transfer(idempotency_key=key, from_user_id=payer, to_user_id=payee, amount="1")
        with pytest.raises(ValidationError, match="control characters"):
            ledger.transact(idempotency_key=key + "\x1fcredit", user_id=payee, amount="1",
                            type="debit")  # fmt: skip

    def test_insufficient_funds_is_refused_recorded_and_final(self, ledger: Ledger) -> None:
        """An overdrawing transfer moves nothing, and its key stays refused after a credit."""
        payer, payee = _pair(ledger, a="3")
        key = unique("t")
        before = (ledger.get_user_balance(payer).amount, ledger.get_user_balance(payee).amount)
        with pytest.raises(InsufficientFunds) as caught:
            ledger.transfer(idempotency_key=key, from_user_id=payer, to_user_id=payee, amount="4")
        assert (Decimal("3.00"), Decimal("4.00")) == (caught.value.balance, caught.value.amount)
        assert before == (
            ledger.get_user_balance(payer).amount, ledger.get_user_balance(payee).amount,
        )  # fmt: skip
        ledger.transact(idempotency_key=unique("k"), user_id=payer, amount="10", type="credit")
        with pytest.raises(InsufficientFunds):
            ledger.transfer(idempotency_key=key, from_user_id=payer, to_user_id=payee, amount="4")

    def test_to_oneself_is_a_validation_error(self, ledger: Ledger) -> None:
        """A self-transfer is refused before anything is sent."""
        payer, _ = _pair(ledger)
        with pytest.raises(ValidationError) as caught:
            ledger.transfer(idempotency_key=unique("t"), from_user_id=payer, to_user_id=payer,
                            amount="1")  # fmt: skip
        assert "to_user_id" == caught.value.field

    @pytest.mark.parametrize("missing", ["payer", "payee"])
    def test_an_unknown_account_is_refused_and_not_recorded(
        self, fresh_ledger: Ledger, missing: str
    ) -> None:
        """Either side unknown raises UserNotFound naming it; nothing is written."""
        payer, payee = _pair(fresh_ledger)
        ghost = unique("ghost")
        ids = {"payer": payer, "payee": payee, missing: ghost}
        before = scan_tables(fresh_ledger)
        with pytest.raises(UserNotFound) as caught:
            fresh_ledger.transfer(idempotency_key=unique("t"), from_user_id=ids["payer"],
                            to_user_id=ids["payee"], amount="1")  # fmt: skip
        assert ghost == caught.value.user_id
        assert before == scan_tables(fresh_ledger)

    def test_between_currencies_is_a_mismatch(self, fresh_ledger: Ledger) -> None:
        """A EUR account cannot pay a USD account; nothing is written."""
        payer, payee = unique("eur"), unique("usd")
        fresh_ledger.create_user(payer, balance="10", currency="EUR")
        fresh_ledger.create_user(payee, balance="10")
        before = scan_tables(fresh_ledger)
        with pytest.raises(CurrencyMismatch) as caught:
            fresh_ledger.transfer(idempotency_key=unique("t"), from_user_id=payer, to_user_id=payee,
                            amount="1")  # fmt: skip
        assert (payee, "EUR", "USD") == (
            caught.value.user_id, caught.value.expected, caught.value.actual,
        )  # fmt: skip
        assert before == scan_tables(fresh_ledger)

    def test_between_accounts_of_a_foreign_currency_uses_it(self, ledger: Ledger) -> None:
        """Two EUR accounts transfer in EUR without naming it."""
        payer, payee = _pair(ledger, "20", "0", currency="EUR")
        result = ledger.transfer(idempotency_key=unique("t"), from_user_id=payer,
                                 to_user_id=payee, amount="2.5")  # fmt: skip
        assert ("EUR", Decimal("2.50")) == (result.currency, ledger.get_user_balance(payee).amount)
