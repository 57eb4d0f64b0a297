"""Refunds: all or part of a debit, credit, transfer, capture or posting given back once per key."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from dynaledger import Ledger
from dynaledger.errors import (
    CurrencyMismatch,
    IdempotencyConflict,
    InsufficientFunds,
    MovementNotFound,
    NotRefundable,
    RefundExceeded,
    ValidationError,
)
from dynaledger.values import Leg
from tests.conftest import FAST_RETRY, RequestCounter, operator_client, unique


def _user(ledger: Ledger, balance: str = "100", currency: str | None = None) -> str:
    user_id = unique("r")
    ledger.create_user(user_id, balance=balance, currency=currency)
    return user_id


def _balance(ledger: Ledger, user_id: str) -> Decimal:
    return ledger.get_user_balance(user_id).amount


class TestRefund:
    def test_a_partial_then_the_rest_of_a_debit_credits_the_account_back(
        self, ledger: Ledger
    ) -> None:
        """Debit 30, refund 10 then the rest (None): 80, then 100; results name the amounts."""
        user, bet = _user(ledger), unique("bet")
        ledger.transact(idempotency_key=bet, user_id=user, amount="30", type="debit")
        first = ledger.refund(idempotency_key=unique("rf"), of=bet, amount="10")
        assert (bet, "transact", Decimal("10.00"), "USD", False) == (
            first.of,
            first.kind,
            first.amount,
            first.currency,
            first.replayed,
        )
        assert Decimal("80.00") == _balance(ledger, user)
        rest = ledger.refund(idempotency_key=unique("rf"), of=bet)
        assert Decimal("20.00") == rest.amount
        assert Decimal("100.00") == _balance(ledger, user)

    def test_refunds_never_exceed_the_original_and_the_error_names_what_is_left(
        self, ledger: Ledger
    ) -> None:
        """Debit 30, refund 25, then 10: RefundExceeded with 5 left; the balance stays 95. Once
        all is refunded, a refund of all: RefundExceeded with 0 left and an amount of 0."""
        user, bet = _user(ledger), unique("bet")
        ledger.transact(idempotency_key=bet, user_id=user, amount="30", type="debit")
        ledger.refund(idempotency_key=unique("rf"), of=bet, amount="25")
        with pytest.raises(RefundExceeded) as caught:
            ledger.refund(idempotency_key=unique("rf"), of=bet, amount="10")
        assert (bet, Decimal("5.00"), Decimal("10.00")) == (
            caught.value.key,
            caught.value.left,
            caught.value.amount,
        )
        assert Decimal("95.00") == _balance(ledger, user)
        with pytest.raises(RefundExceeded):
            ledger.refund(idempotency_key=unique("rf"), of=bet, amount="5.01")
        with pytest.raises(RefundExceeded) as past_largest:
            ledger.refund(idempotency_key=unique("rf"), of=bet, amount="1000000000000001")
        assert Decimal("1000000000000001.00") == past_largest.value.amount
        ledger.refund(idempotency_key=unique("rf"), of=bet)  # the 5 left
        with pytest.raises(RefundExceeded) as nothing_left:
            ledger.refund(idempotency_key=unique("rf"), of=bet)  # all of nothing
        assert (Decimal("0.00"), Decimal("0.00")) == (
            nothing_left.value.left, nothing_left.value.amount,
        )  # fmt: skip
        assert Decimal("100.00") == _balance(ledger, user)

    def test_a_replay_returns_the_stored_refund_and_moves_nothing(self, ledger: Ledger) -> None:
        """The same key twice: one credit of 10, the second result replayed."""
        user, bet, key = _user(ledger), unique("bet"), unique("rf")
        ledger.transact(idempotency_key=bet, user_id=user, amount="30", type="debit")
        first = ledger.refund(idempotency_key=key, of=bet, amount="10")
        again = ledger.refund(idempotency_key=key, of=bet, amount="10")
        assert (False, True, first.timestamp) == (first.replayed, again.replayed, again.timestamp)
        assert Decimal("80.00") == _balance(ledger, user)

    def test_the_same_key_for_another_refund_is_a_conflict_naming_the_fields(
        self, ledger: Ledger
    ) -> None:
        """Key reused with another original and amount: IdempotencyConflict naming both."""
        user, bet, other, key = _user(ledger), unique("bet"), unique("bet"), unique("rf")
        for k in (bet, other):
            ledger.transact(idempotency_key=k, user_id=user, amount="30", type="debit")
        ledger.refund(idempotency_key=key, of=bet, amount="10")
        with pytest.raises(IdempotencyConflict) as caught:
            ledger.refund(idempotency_key=key, of=other, amount="11")
        assert ("of", "amount") == caught.value.fields
        with pytest.raises(IdempotencyConflict) as again:
            ledger.refund(idempotency_key=bet, of=other)
        assert ("kind",) == again.value.fields

    def test_a_credit_refund_takes_money_back_and_may_lack_funds_finally(
        self, ledger: Ledger
    ) -> None:
        """Credit 50, spend 120 of 150: refunding 50 is refused (30 there), final for the key."""
        user, win, key = _user(ledger), unique("win"), unique("rf")
        ledger.transact(idempotency_key=win, user_id=user, amount="50", type="credit")
        ledger.transact(idempotency_key=unique("spend"), user_id=user, amount="120", type="debit")
        with pytest.raises(InsufficientFunds) as caught:
            ledger.refund(idempotency_key=key, of=win)
        assert (user, Decimal("30.00"), Decimal("50.00")) == (
            caught.value.user_id,
            caught.value.balance,
            caught.value.amount,
        )
        ledger.transact(idempotency_key=unique("top"), user_id=user, amount="100", type="credit")
        with pytest.raises(InsufficientFunds):
            ledger.refund(idempotency_key=key, of=win)  # final for its key
        assert Decimal("130.00") == _balance(ledger, user)
        done = ledger.refund(idempotency_key=unique("rf"), of=win)  # a new key goes through
        assert Decimal("50.00") == done.amount
        assert Decimal("80.00") == _balance(ledger, user)

    def test_a_transfer_refund_moves_it_back_from_the_payee(self, ledger: Ledger) -> None:
        """Transfer 40 payer→payee, refund 15: payer 75, payee 25; payee lacking funds refuses."""
        payer, payee, key = _user(ledger), _user(ledger, "0"), unique("t")
        ledger.transfer(idempotency_key=key, from_user_id=payer, to_user_id=payee, amount="40")
        ledger.refund(idempotency_key=unique("rf"), of=key, amount="15")
        assert (Decimal("75.00"), Decimal("25.00")) == (
            _balance(ledger, payer),
            _balance(ledger, payee),
        )
        ledger.transact(idempotency_key=unique("s"), user_id=payee, amount="20", type="debit")
        with pytest.raises(InsufficientFunds) as caught:
            ledger.refund(idempotency_key=unique("rf"), of=key, amount="10")
        assert (payee, Decimal("5.00")) == (caught.value.user_id, caught.value.balance)

    def test_a_capture_refund_credits_the_holder_and_debits_the_payee(self, ledger: Ledger) -> None:
        """Hold 30 for the house, capture 30, refund 12: player 82, house 18, nothing held."""
        player, house, hold, cap = _user(ledger), _user(ledger, "0"), unique("h"), unique("c")
        ledger.hold(idempotency_key=hold, user_id=player, amount="30", to_user_id=house)
        ledger.capture(idempotency_key=cap, hold_id=hold)
        ledger.refund(idempotency_key=unique("rf"), of=cap, amount="12")
        assert (Decimal("82.00"), Decimal("18.00"), Decimal("0")) == (
            _balance(ledger, player), _balance(ledger, house),
            ledger.get_user_balance(player).held,
        )  # fmt: skip
        assert [] == list(ledger.reconcile([player, house]).mismatches)

    def test_unknown_refused_refund_and_hold_originals_are_refused_clearly(
        self, ledger: Ledger
    ) -> None:
        """MovementNotFound, then NotRefundable for a refused debit, a refund and a hold."""
        user = _user(ledger, "10")
        with pytest.raises(MovementNotFound):
            ledger.refund(idempotency_key=unique("rf"), of=unique("nothing"))
        refused, bet, hold = unique("big"), unique("bet"), unique("h")
        with pytest.raises(InsufficientFunds):
            ledger.transact(idempotency_key=refused, user_id=user, amount="50", type="debit")
        with pytest.raises(NotRefundable, match="refused"):
            ledger.refund(idempotency_key=unique("rf"), of=refused)
        ledger.transact(idempotency_key=bet, user_id=user, amount="5", type="debit")
        first = unique("rf")
        ledger.refund(idempotency_key=first, of=bet, amount="1")
        with pytest.raises(NotRefundable, match="is a refund"):
            ledger.refund(idempotency_key=unique("rf"), of=first)
        ledger.hold(idempotency_key=hold, user_id=user, amount="1")
        limit = unique("lim")
        ledger.set_credit_limit(idempotency_key=limit, user_id=user, limit="5")
        reasons = []
        for original in (hold, limit):
            with pytest.raises(NotRefundable) as caught:
                ledger.refund(idempotency_key=unique("rf"), of=original)
            reasons.append(caught.value.reason)
        assert ["a hold is not refundable (void it instead)", "a limit is not refundable"] == (
            reasons
        )

    def test_a_refund_in_another_currency_or_unit_is_refused_and_writes_nothing(
        self, ledger: Ledger
    ) -> None:
        """currency EUR of a USD debit: CurrencyMismatch; 0.001 USD: ValidationError; 70 kept."""
        user, bet = _user(ledger), unique("bet")
        ledger.transact(idempotency_key=bet, user_id=user, amount="30", type="debit")
        with pytest.raises(CurrencyMismatch) as caught:
            ledger.refund(idempotency_key=unique("rf"), of=bet, currency="EUR")
        assert ("EUR", "USD") == (caught.value.expected, caught.value.actual)
        with pytest.raises(ValidationError) as bad:
            ledger.refund(idempotency_key=unique("rf"), of=bet, amount="0.001")
        assert "amount" == bad.value.field
        assert Decimal("70.00") == _balance(ledger, user)

    def test_concurrent_refunds_of_one_original_never_exceed_it(self, ledger: Ledger) -> None:
        """Eight refunds of 10 against a debit of 30 at once: exactly 3 apply, the rest exceed."""
        user, bet = _user(ledger), unique("bet")
        ledger.transact(idempotency_key=bet, user_id=user, amount="30", type="debit")

        def one(_: int) -> str:
            try:
                ledger.refund(idempotency_key=unique("rf"), of=bet, amount="10")
            except RefundExceeded:
                return "exceeded"
            return "applied"

        with ThreadPoolExecutor(4) as pool:
            outcomes = sorted(pool.map(one, range(8)))
        assert ["applied"] * 3 + ["exceeded"] * 5 == outcomes
        assert Decimal("100.00") == _balance(ledger, user)

    def test_history_links_each_refund_to_its_original_and_reconcile_stays_exact(
        self, ledger: Ledger
    ) -> None:
        """The payee's history shows the refund's debit with refund_of; reconcile finds nothing."""
        payer, payee, key, rf = _user(ledger), _user(ledger, "0"), unique("t"), unique("rf")
        ledger.transfer(idempotency_key=key, from_user_id=payer, to_user_id=payee, amount="40")
        ledger.refund(idempotency_key=rf, of=key, amount="15")
        newest = ledger.history(payee).items[0]
        assert (rf, "refund", key, "debit", Decimal("15.00"), payer) == (
            newest.idempotency_key, newest.kind, newest.refund_of, newest.type.value,
            newest.amount, newest.counterparty_id,
        )  # fmt: skip
        assert () == ledger.reconcile([payer, payee]).mismatches


class TestRefundOfPosting:
    def test_a_posting_refund_gives_back_every_leg_and_only_whole(self, ledger: Ledger) -> None:
        """Post house -20, player +19, rake +1; a partial refund is refused; the whole restores."""
        house, player, rake, key = (
            _user(ledger),
            _user(ledger, "0"),
            _user(ledger, "0"),
            unique("p"),
        )
        ledger.post(idempotency_key=key, legs=[
            Leg(house, "20", "debit"), Leg(player, "19", "credit"), Leg(rake, "1", "credit"),
        ])  # fmt: skip
        with pytest.raises(ValidationError) as caught:
            ledger.refund(idempotency_key=unique("rf"), of=key, amount="5")
        assert "amount: a posting is refunded whole: give no amount or its total, 20.00" == str(
            caught.value
        )
        result = ledger.refund(idempotency_key=unique("rf"), of=key)
        assert ("posting", Decimal("20.00")) == (result.kind, result.amount)
        assert [Decimal("100.00"), Decimal("0.00"), Decimal("0.00")] == [
            _balance(ledger, u) for u in (house, player, rake)
        ]
        with pytest.raises(RefundExceeded):
            ledger.refund(idempotency_key=unique("rf"), of=key)
        assert () == ledger.reconcile([house, player, rake]).mismatches

    def test_the_refund_reports_the_postings_total_whatever_account_comes_first(
        self, ledger: Ledger
    ) -> None:
        """Player +19 first, house -20, rake +1: the refund gives back 20, not the first 19."""
        house, player, rake, key = _user(ledger), _user(ledger, "0"), _user(ledger, "0"), unique()
        ledger.post(idempotency_key=key, legs=[
            Leg(player, "19", "credit"), Leg(house, "20", "debit"), Leg(rake, "1", "credit"),
        ])  # fmt: skip
        back = unique("rf")
        results = [ledger.refund(idempotency_key=back, of=key) for _ in range(2)]
        assert [(Decimal("20.00"), False), (Decimal("20.00"), True)] == [
            (result.amount, result.replayed) for result in results
        ]

    def test_a_total_past_the_largest_amount_is_refunded_by_naming_it(self, ledger: Ledger) -> None:
        """Legs of 10**15 merge into net legs of 2 * 10**15 (each leg is at most the largest
        amount, the total is not): refund(amount=<the total>) gives it all back."""
        big = "1000000000000000"
        payer, payee, key = _user(ledger, "2000000000000000"), _user(ledger, "0"), unique("p")
        posted = ledger.post(idempotency_key=key, legs=[
            Leg(payer, big, "debit"), Leg(payer, big, "debit"),
            Leg(payee, big, "credit"), Leg(payee, big, "credit"),
        ])  # fmt: skip
        back = ledger.refund(idempotency_key=unique("rf"), of=key, amount=posted.amount)
        assert (Decimal("2000000000000000.00"), Decimal("2000000000000000.00")) == (
            back.amount, _balance(ledger, payer),
        )  # fmt: skip

    def test_an_account_netting_0_is_given_back_a_credit_of_0(self, ledger: Ledger) -> None:
        """Its leg of 0 (a credit of 0, as merged) comes back as a credit of 0 in the refund,
        shown so in its history; the other accounts are reversed."""
        even, house, player, key = _user(ledger, "0"), _user(ledger), _user(ledger, "0"), unique()
        ledger.post(idempotency_key=key, legs=[
            Leg(even, "3", "credit"), Leg(even, "3", "debit"),
            Leg(house, "5", "debit"), Leg(player, "5", "credit"),
        ])  # fmt: skip
        back = unique("rf")
        ledger.refund(idempotency_key=back, of=key)
        newest = ledger.history(even).items[0]
        assert (back, "refund", "credit", Decimal("0.00")) == (
            newest.idempotency_key, newest.kind, newest.type.value, newest.amount,
        )  # fmt: skip
        assert [Decimal("0.00"), Decimal("100.00"), Decimal("0.00")] == [
            _balance(ledger, user) for user in (even, house, player)
        ]


class _Clock:
    def __init__(self) -> None:
        self.now = datetime(2031, 5, 1, 12, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


class TestFundsInExpiredHolds:
    def test_a_refund_and_a_posting_may_spend_money_sitting_in_expired_holds(
        self, ledger: Ledger, dynamodb_endpoint: str,
        count_requests: Callable[[Ledger], RequestCounter],
    ) -> None:  # fmt: skip
        """Credit 50 then hold it all for 10 s; 10 s later the refund of the credit releases the
        hold in its second write (2 requests: the credit is known to this ledger, so the
        refund is not read first) and applies; a posting does the same (2)."""
        clock = _Clock()
        timed = Ledger(dynamodb_endpoint, table_prefix=ledger.settings.table_prefix,
                       retry=FAST_RETRY, clock=clock)  # fmt: skip
        counter = count_requests(timed)
        user, other, win = _user(timed, "0"), _user(timed, "0"), unique("win")
        timed.transact(idempotency_key=win, user_id=user, amount="50", type="credit")
        timed.hold(idempotency_key=unique("h"), user_id=user, amount="50", timeout=10)
        clock.now += timedelta(seconds=10)
        counter.reset()
        timed.refund(idempotency_key=unique("rf"), of=win, amount="20")
        assert ({"TransactWriteItems": 2}, Decimal("30.00"), Decimal("0")) == (
            dict(counter.by_operation),
            _balance(timed, user),
            timed.get_user_balance(user).held,
        )
        timed.hold(idempotency_key=unique("h"), user_id=user, amount="30", timeout=5)
        clock.now += timedelta(seconds=5)
        counter.reset()
        timed.post(idempotency_key=unique("p"), legs=[Leg(user, "30", "debit"),
                                                      Leg(other, "30", "credit")])  # fmt: skip
        assert ({"TransactWriteItems": 2}, Decimal("0.00"), Decimal("30.00")) == (
            dict(counter.by_operation),
            _balance(timed, user),
            _balance(timed, other),
        )
        assert () == timed.reconcile([user, other]).mismatches

    def test_two_accounts_each_paying_from_expired_holds_are_released_in_one_request(
        self, ledger: Ledger, dynamodb_endpoint: str,
        count_requests: Callable[[Ledger], RequestCounter],
    ) -> None:  # fmt: skip
        """A posting credits a and b 1 each; each holds its 1 for 10 s. 10 s later the
        refund of the posting needs both holds released: its second request releases
        both and applies (2 requests, not a ConcurrencyError from releasing one account
        per request in turns). A posting debiting two such accounts does the same."""
        clock = _Clock()
        timed = Ledger(dynamodb_endpoint, table_prefix=ledger.settings.table_prefix,
                       retry=FAST_RETRY, clock=clock)  # fmt: skip
        counter = count_requests(timed)
        house, a, b, c, d, sink = (_user(timed, x) for x in ("10", "0", "0", "5", "5", "0"))
        settle = unique("p")
        timed.post(idempotency_key=settle, legs=[Leg(house, "2", "debit"), Leg(a, "1", "credit"),
                                                 Leg(b, "1", "credit")])  # fmt: skip
        for holder, amount in ((a, "1"), (b, "1"), (c, "5"), (d, "5")):
            timed.hold(idempotency_key=unique("h"), user_id=holder, amount=amount, timeout=10)
        clock.now += timedelta(seconds=10)
        counter.reset()
        refunded = timed.refund(idempotency_key=unique("rf"), of=settle)
        refund_requests = dict(counter.by_operation)
        counter.reset()
        posted = timed.post(idempotency_key=unique("p"), legs=[
            Leg(c, "5", "debit"), Leg(d, "5", "debit"), Leg(sink, "10", "credit"),
        ])  # fmt: skip
        assert (
            {"TransactWriteItems": 2},
            {"TransactWriteItems": 2},
            Decimal("2.00"),
            Decimal("10.00"),
        ) == (refund_requests, dict(counter.by_operation), refunded.amount, posted.amount)
        everyone = [house, a, b, c, d, sink]
        assert [Decimal("10.00"), *[Decimal("0.00")] * 4, Decimal("10.00")] == [
            _balance(timed, u) for u in everyone
        ]
        assert () == timed.reconcile(everyone).mismatches

    def test_two_accounts_needing_more_releases_than_fit_release_in_a_request_first(
        self, ledger: Ledger, dynamodb_endpoint: str,
        count_requests: Callable[[Ledger], RequestCounter],
    ) -> None:  # fmt: skip
        """Two accounts whose money sits in 30 expired holds of 1 each: a posting debiting
        30 from both needs 60 releases, more than fit beside its 4 actions. The first
        account's 30 are released in a request of their own, then the posting goes with
        the second's 30: 3 requests, balances and reconcile agree."""
        clock = _Clock()
        timed = Ledger(dynamodb_endpoint, table_prefix=ledger.settings.table_prefix,
                       retry=FAST_RETRY, clock=clock)  # fmt: skip
        counter = count_requests(timed)
        a, b, sink = (_user(timed, x) for x in ("30", "30", "0"))
        for holder in (a, b):
            for _ in range(30):
                timed.hold(idempotency_key=unique("h"), user_id=holder, amount="1", timeout=10)
        clock.now += timedelta(seconds=10)
        counter.reset()
        timed.post(idempotency_key=unique("p"), legs=[
            Leg(a, "30", "debit"), Leg(b, "30", "debit"), Leg(sink, "60", "credit"),
        ])  # fmt: skip
        requests, balances = dict(counter.by_operation), [_balance(timed, u) for u in (a, b, sink)]
        assert {"TransactWriteItems": 3} == requests
        assert [Decimal("0.00"), Decimal("0.00"), Decimal("60.00")] == balances
        assert ((), Decimal(0)) == (
            timed.reconcile([a, b, sink]).mismatches,
            timed.get_user_balance(a).held + timed.get_user_balance(b).held,
        )

    def test_three_accounts_needing_more_releases_than_fit_release_in_turns_then_apply(
        self, ledger: Ledger, dynamodb_endpoint: str,
        count_requests: Callable[[Ledger], RequestCounter],
    ) -> None:  # fmt: skip
        """Three accounts each paying 30 from 30 expired holds of 1: 90 releases. The
        first account's go in a request of their own, then the second's, then the
        posting with the third's (28 actions and 60 release actions): 4 requests."""
        clock = _Clock()
        timed = Ledger(dynamodb_endpoint, table_prefix=ledger.settings.table_prefix,
                       retry=FAST_RETRY, clock=clock)  # fmt: skip
        counter = count_requests(timed)
        payers, sink = [_user(timed, "30") for _ in range(3)], _user(timed, "0")
        for holder in payers:
            for _ in range(30):
                timed.hold(idempotency_key=unique("h"), user_id=holder, amount="1", timeout=10)
        clock.now += timedelta(seconds=10)
        counter.reset()
        legs = [*(Leg(p, "30", "debit") for p in payers), Leg(sink, "90", "credit")]
        timed.post(idempotency_key=unique("p"), legs=legs)
        requests, balances = dict(counter.by_operation), [_balance(timed, u) for u in payers]
        assert ({"TransactWriteItems": 4}, [Decimal("0.00")] * 3) == (requests, balances)
        assert ((), Decimal("90.00")) == (
            timed.reconcile([*payers, sink]).mismatches, _balance(timed, sink),
        )  # fmt: skip

    def test_the_refund_of_the_largest_posting_releases_its_accounts_holds_in_turns(
        self, ledger: Ledger, dynamodb_endpoint: str
    ) -> None:
        """A posting of 49 accounts (the house pays 48 players 1 each); each player holds
        its 1 and the hold expires. The refund needs 48 releases beside its 99 actions:
        release-only requests go first, and the refund applies in the one call."""
        clock = _Clock()
        timed = Ledger(dynamodb_endpoint, table_prefix=ledger.settings.table_prefix,
                       retry=FAST_RETRY, clock=clock)  # fmt: skip
        house, players = _user(timed, "100"), [_user(timed, "0") for _ in range(48)]
        key = unique("p")
        timed.post(idempotency_key=key, legs=[
            Leg(house, "48", "debit"), *(Leg(p, "1", "credit") for p in players),
        ])  # fmt: skip
        for player in players:
            timed.hold(idempotency_key=unique("h"), user_id=player, amount="1", timeout=10)
        clock.now += timedelta(seconds=10)
        refunded = timed.refund(idempotency_key=unique("rf"), of=key)
        assert (Decimal("48.00"), Decimal("100.00"), [Decimal("0.00")] * 48) == (
            refunded.amount, _balance(timed, house), [_balance(timed, p) for p in players],
        )  # fmt: skip
        assert () == timed.reconcile([house, *players]).mismatches

    def test_more_expired_holds_than_one_request_holds_are_released_before_the_refund(
        self, ledger: Ledger, dynamodb_endpoint: str
    ) -> None:
        """Two accounts whose money sits in expired holds of 1 (100 and 60 of them): a refund
        of 60 from the first and a posting of 55 from the second each need more releases
        than fit one transaction, so they release in requests of their own first, then
        apply in full; the balances, the results and reconcile agree."""
        clock = _Clock()
        timed = Ledger(dynamodb_endpoint, table_prefix=ledger.settings.table_prefix,
                       retry=FAST_RETRY, clock=clock)  # fmt: skip
        payer, user, poster, other = (_user(timed, b) for b in ("200", "0", "0", "0"))
        paid = unique("t")
        timed.transfer(idempotency_key=paid, from_user_id=payer, to_user_id=user, amount="100")
        timed.transfer(idempotency_key=unique("t"), from_user_id=payer, to_user_id=poster,
                       amount="60")  # fmt: skip
        for holder, count in ((user, 100), (poster, 60)):
            for _ in range(count):
                timed.hold(idempotency_key=unique("h"), user_id=holder, amount="1", timeout=10)
        clock.now += timedelta(seconds=10)
        refunded = timed.refund(idempotency_key=unique("rf"), of=paid, amount="60")
        legs = [Leg(poster, "55", "debit"), Leg(other, "55", "credit")]
        posted = timed.post(idempotency_key=unique("p"), legs=legs)
        assert (Decimal("60.00"), Decimal("55.00")) == (refunded.amount, posted.amount)
        assert [Decimal("100.00"), Decimal("40.00"), Decimal("5.00"), Decimal("55.00")] == [
            _balance(timed, u) for u in (payer, user, poster, other)
        ]
        everyone = [payer, user, poster, other]
        assert ((), [Decimal(0)] * 2) == (
            timed.reconcile(everyone).mismatches,
            [timed.get_user_balance(u).held for u in (user, poster)],
        )


class TestKnownOriginals:
    def test_an_original_rewritten_under_its_key_is_read_again_not_trusted(
        self, ledger: Ledger
    ) -> None:
        """The ledger wrote a credit of alice; by hand the key is rewritten as a credit of bob
        (another request). The refund's write is refused by the record's identity, the
        original is read, and the refund takes the money from bob, not from alice."""
        alice, bob, key = _user(ledger, "0"), _user(ledger, "0"), unique("win")
        ledger.transact(idempotency_key=key, user_id=alice, amount="10", type="credit")
        ledger.transact(idempotency_key=unique("t"), user_id=bob, amount="10", type="credit")
        table = ledger.table_names[1]
        client = operator_client(ledger)
        item = client.get_item(TableName=table, Key={"idempotencyKey": {"S": key}},
                               ConsistentRead=True)["Item"]  # fmt: skip
        item.update({"userId": {"S": bob}, "requestId": {"S": "by-hand"}})
        client.put_item(TableName=table, Item=item)
        refunded = ledger.refund(idempotency_key=unique("rf"), of=key)
        assert Decimal("10.00") == refunded.amount
        assert [Decimal("10.00"), Decimal("0.00")] == [_balance(ledger, u) for u in (alice, bob)]

    @pytest.mark.parametrize(
        ("attribute", "value", "outcome", "balance"),
        [
            ("type", "debit", None, "111.00"),  # now a debit: its refund credits
            ("currency", "EUR", CurrencyMismatch, "110.00"),
            ("kind", "refund", NotRefundable, "110.00"),
        ],
    )
    def test_an_original_edited_in_place_is_refunded_as_read_not_as_remembered(
        self, ledger: Ledger, attribute: str, value: str, outcome: type[Exception] | None,
        balance: str,
    ) -> None:  # fmt: skip
        """The ledger credited 10; by hand one attribute of the record changes in place
        (its requestId kept). The refund of 1 by this ledger ends as the read decides:
        as a debit's refund, CurrencyMismatch, NotRefundable; not by what it remembered."""
        user, key = _user(ledger), unique("win")
        ledger.transact(idempotency_key=key, user_id=user, amount="10", type="credit")
        operator_client(ledger).update_item(
            TableName=ledger.table_names[1], Key={"idempotencyKey": {"S": key}},
            UpdateExpression="SET #a = :v", ExpressionAttributeNames={"#a": attribute},
            ExpressionAttributeValues={":v": {"S": value}},
        )  # fmt: skip
        refund = {"idempotency_key": unique("rf"), "of": key, "amount": "1"}
        if outcome is None:
            ledger.refund(**refund)
        else:
            with pytest.raises(outcome):
                ledger.refund(**refund)
        assert Decimal(balance) == _balance(ledger, user)

    def test_another_clients_original_edited_by_hand_is_read_again_not_trusted(
        self, ledger: Ledger
    ) -> None:
        """Another client's debit of 10 (no request id) is known to this ledger after a
        refund of 1. By hand its amount becomes 2: a refund of 5 is RefundExceeded with 1
        left (it was applied, past the original). Rewritten for bob: the next refund
        credits bob, not alice."""
        alice, bob, key = _user(ledger, "90"), _user(ledger, "90"), unique("svc")
        table, client = ledger.table_names[1], operator_client(ledger)
        item = {"idempotencyKey": {"S": key}, "userId": {"S": alice}, "amount": {"N": "10"},
                "type": {"S": "debit"}, "timestamp": {"S": "2026-01-02T03:04:05.123Z"}}  # fmt: skip
        client.put_item(TableName=table, Item=item)
        ledger.refund(idempotency_key=unique("rf"), of=key, amount="1")
        client.put_item(TableName=table, Item={**item, "amount": {"N": "2"},
                                               "refunded": {"N": "1"}})  # fmt: skip
        with pytest.raises(RefundExceeded) as caught:
            ledger.refund(idempotency_key=unique("rf"), of=key, amount="5")
        client.put_item(TableName=table, Item={**item, "userId": {"S": bob},
                                               "refunded": {"N": "1"}})  # fmt: skip
        ledger.refund(idempotency_key=unique("rf"), of=key, amount="1")
        assert (Decimal("1.00"), [Decimal("91.00"), Decimal("91.00")]) == (
            caught.value.left, [_balance(ledger, u) for u in (alice, bob)],
        )  # fmt: skip

    def test_a_replay_on_a_server_that_returns_no_old_item_reads_the_key(
        self, ledger: Ledger, dynamodb_endpoint: str
    ) -> None:
        """With the cancellation's old items stripped (as some servers send none), a replay of
        a known original's refund, and of a capture while its hold is open, still returns
        the stored result (replayed) instead of retrying the same write."""
        own = Ledger(dynamodb_endpoint, table_prefix=ledger.settings.table_prefix,
                     retry=FAST_RETRY)  # fmt: skip

        def strip(parsed: dict[str, Any], **kwargs: Any) -> None:
            for reason in parsed.get("CancellationReasons", []):
                reason.pop("Item", None)

        own.botocore_client.meta.events.register("after-call.dynamodb.TransactWriteItems", strip)
        user, house, bet, hold_id = _user(own), _user(own, "0"), unique("bet"), unique("h")
        own.transact(idempotency_key=bet, user_id=user, amount="30", type="debit")
        refund = {"idempotency_key": unique("rf"), "of": bet, "amount": "10"}
        own.refund(**refund)
        own.hold(idempotency_key=hold_id, user_id=user, amount="5", to_user_id=house)
        capture = {"idempotency_key": unique("c"), "hold_id": hold_id, "amount": "2",
                   "final": False}  # fmt: skip
        own.capture(**capture)
        assert (True, True) == (own.refund(**refund).replayed, own.capture(**capture).replayed)
        # 100 - 30 + 10 back - 5 held (2 of them captured to the house, 3 still held)
        assert [Decimal("75.00"), Decimal("2.00")] == [_balance(own, u) for u in (user, house)]
