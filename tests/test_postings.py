"""Postings: balanced legs on several accounts, all applied in one request or none."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from dynaledger import Ledger, Leg
from dynaledger.errors import (
    CurrencyMismatch,
    IdempotencyConflict,
    InsufficientFunds,
    NotRefundable,
    UserNotFound,
    ValidationError,
)
from dynaledger.services import postings
from dynaledger.services.postings import MAX_ACCOUNTS
from tests.conftest import scan_tables, unique


def _user(ledger: Ledger, balance: str = "100", currency: str | None = None) -> str:
    user_id = unique("p")
    ledger.create_user(user_id, balance=balance, currency=currency)
    return user_id


def _balances(ledger: Ledger, *users: str) -> list[Decimal]:
    return [ledger.get_user_balance(user).amount for user in users]


def _round(house: str, player: str, rake: str) -> list[Leg]:
    return [Leg(house, "20", "debit"), Leg(player, "19", "credit"), Leg(rake, "1", "credit")]


class TestPost:
    def test_a_round_settles_across_three_accounts_in_one_posting(self, ledger: Ledger) -> None:
        """House -20, player +19, rake +1: balances 80, 19, 1; the result lists the net legs."""
        house, player, rake, key = _user(ledger), _user(ledger, "0"), _user(ledger, "0"), unique()
        result = ledger.post(idempotency_key=key, legs=_round(house, player, rake))
        assert [Decimal("80.00"), Decimal("19.00"), Decimal("1.00")] == _balances(
            ledger, house, player, rake
        )
        assert (
            key, Decimal("20.00"), "USD", False,
            (Leg(house, Decimal("20.00"), "debit"), Leg(player, Decimal("19.00"), "credit"),
             Leg(rake, Decimal("1.00"), "credit")),
        ) == (result.idempotency_key, result.amount, result.currency, result.replayed,
              result.legs)  # fmt: skip
        assert () == ledger.reconcile([house, player, rake]).mismatches

    def test_legs_on_one_account_are_merged_into_its_net_leg(self, ledger: Ledger) -> None:
        """House -20 and +5 become one debit of 15; player +15."""
        house, player = _user(ledger), _user(ledger, "0")
        result = ledger.post(idempotency_key=unique(), legs=[
            Leg(house, "20", "debit"), Leg(player, "15", "credit"), Leg(house, "5", "credit"),
        ])  # fmt: skip
        assert (Leg(house, Decimal("15.00"), "debit"), Leg(player, Decimal("15.00"), "credit")) == (
            result.legs
        )
        assert [Decimal("85.00"), Decimal("15.00")] == _balances(ledger, house, player)

    def test_each_history_shows_its_leg_with_the_key_and_the_other_accounts(
        self, ledger: Ledger
    ) -> None:
        """The rake's entry: the posting's key, credit 1, kind posting, with house and player."""
        house, player, rake, key = _user(ledger), _user(ledger, "0"), _user(ledger, "0"), unique()
        ledger.post(idempotency_key=key, legs=_round(house, player, rake))
        entry = ledger.history(rake).items[0]
        assert (key, "posting", "credit", Decimal("1.00"), (house, player)) == (
            entry.idempotency_key,
            entry.kind,
            entry.type.value,
            entry.amount,
            entry.posted_with,
        )
        assert (key, (player, rake)) == (
            ledger.history(house).items[0].idempotency_key,
            ledger.history(house).items[0].posted_with,
        )

    def test_a_replay_returns_the_stored_posting_and_moves_nothing(self, ledger: Ledger) -> None:
        """The same posting twice: applied once, the second replayed with the same timestamp."""
        house, player, rake, key = _user(ledger), _user(ledger, "0"), _user(ledger, "0"), unique()
        first = ledger.post(idempotency_key=key, legs=_round(house, player, rake))
        again = ledger.post(idempotency_key=key, legs=_round(house, player, rake))
        assert (True, first.timestamp, first.legs) == (again.replayed, again.timestamp, again.legs)
        assert [Decimal("80.00"), Decimal("19.00")] == _balances(ledger, house, player)

    def test_the_same_key_for_other_legs_or_a_movement_is_a_conflict(self, ledger: Ledger) -> None:
        """Other legs: IdempotencyConflict on legs; another currency: on currency; a debit: kind."""
        house, player, rake, key = _user(ledger), _user(ledger, "0"), _user(ledger, "0"), unique()
        ledger.post(idempotency_key=key, legs=_round(house, player, rake))
        other = [Leg(house, "20", "debit"), Leg(player, "20", "credit")]
        with pytest.raises(IdempotencyConflict) as caught:
            ledger.post(idempotency_key=key, legs=other)
        assert ("legs",) == caught.value.fields
        with pytest.raises(IdempotencyConflict) as currency:
            ledger.post(idempotency_key=key, legs=_round(house, player, rake), currency="EUR")
        assert ("currency",) == currency.value.fields
        with pytest.raises(IdempotencyConflict) as kind:
            ledger.transact(idempotency_key=key, user_id=house, amount="20", type="debit")
        assert "kind" in kind.value.fields

    def test_a_refusal_names_the_account_writes_nothing_else_and_is_final(
        self, ledger: Ledger
    ) -> None:
        """House with 10 pays 20: InsufficientFunds for the house; no balance moves; final."""
        house, player, rake, key = (
            _user(ledger, "10"), _user(ledger, "0"), _user(ledger, "0"), unique()
        )  # fmt: skip
        with pytest.raises(InsufficientFunds) as caught:
            ledger.post(idempotency_key=key, legs=_round(house, player, rake))
        assert (house, Decimal("10.00"), Decimal("20.00")) == (
            caught.value.user_id,
            caught.value.balance,
            caught.value.amount,
        )
        ledger.transact(idempotency_key=unique(), user_id=house, amount="50", type="credit")
        with pytest.raises(InsufficientFunds):
            ledger.post(idempotency_key=key, legs=_round(house, player, rake))
        assert [Decimal("60.00"), Decimal("0.00"), Decimal("0.00")] == _balances(
            ledger, house, player, rake
        )
        assert () == ledger.history(player).items

    def test_an_unknown_account_or_another_currency_is_named(self, ledger: Ledger) -> None:
        """A missing rake account: UserNotFound with its id; a EUR rake: CurrencyMismatch."""
        house, player, ghost = _user(ledger), _user(ledger, "0"), unique("ghost")
        with pytest.raises(UserNotFound) as missing:
            ledger.post(idempotency_key=unique(), legs=_round(house, player, ghost))
        assert ghost == missing.value.user_id
        euro = _user(ledger, "0", currency="EUR")
        with pytest.raises(CurrencyMismatch) as caught:
            ledger.post(idempotency_key=unique(), legs=_round(house, player, euro))
        assert (euro, "USD", "EUR") == (
            caught.value.user_id,
            caught.value.expected,
            caught.value.actual,
        )
        assert [Decimal("100.00"), Decimal("0.00")] == _balances(ledger, house, player)

    def test_an_account_whose_legs_cancel_out_gets_a_credit_of_0_read_back_everywhere(
        self, ledger: Ledger, make_ledger: Callable[..., Ledger]
    ) -> None:
        """The account nets 0 (first, so its record holds the key): replays, here and from a
        ledger that never saw it, history, the refund and reconcile all read its 0 leg."""
        even, house, player, key = _user(ledger, "0"), _user(ledger), _user(ledger, "0"), unique()
        legs = [Leg(even, "1", "credit"), Leg(even, "1", "debit"), Leg(house, "2", "debit"),
                Leg(player, "2", "credit")]  # fmt: skip
        posted = ledger.post(idempotency_key=key, legs=legs)
        stranger = make_ledger(table_prefix=ledger.settings.table_prefix)
        replays = [ledger.post(idempotency_key=key, legs=legs),
                   stranger.post(idempotency_key=key, legs=legs)]  # fmt: skip
        assert [(True, posted.legs)] * 2 == [(again.replayed, again.legs) for again in replays]
        assert Leg(even, Decimal("0.00"), "credit") == posted.legs[0]
        entry = ledger.history(even).items[0]
        assert (key, "posting", "credit", Decimal("0.00")) == (
            entry.idempotency_key, entry.kind, entry.type.value, entry.amount,
        )  # fmt: skip
        refunded = stranger.refund(idempotency_key=unique("rf"), of=key)
        assert (Decimal("2.00"), [Decimal("0.00"), Decimal("100.00"), Decimal("0.00")]) == (
            refunded.amount, _balances(ledger, even, house, player),
        )  # fmt: skip
        assert [Decimal("0.00")] * 2 == [e.amount for e in ledger.history(even).items]
        report = ledger.reconcile([even, house, player])
        assert ((), ()) == (report.mismatches, report.problems)

    def test_an_unknown_account_then_a_currency_are_named_before_one_short_of_funds(
        self, ledger: Ledger
    ) -> None:
        """Short first, then a EUR account, then a missing one: UserNotFound; without the
        missing one, CurrencyMismatch; neither writes, so the key then applies."""
        short, euro, ghost, key = _user(ledger, "1"), _user(ledger, "0", "EUR"), unique(), unique()
        legs = [Leg(short, "5", "debit"), Leg(euro, "2", "credit"), Leg(ghost, "3", "credit")]
        with pytest.raises(UserNotFound) as missing:
            ledger.post(idempotency_key=key, legs=legs)
        with pytest.raises(CurrencyMismatch) as currency:
            ledger.post(idempotency_key=key, legs=[*legs[:2], Leg(short, "3", "credit")])
        assert (ghost, euro) == (missing.value.user_id, currency.value.user_id)
        ledger.transact(idempotency_key=unique(), user_id=short, amount="4", type="credit")
        ledger.create_user(ghost, balance="0")
        ledger.post(idempotency_key=key, legs=[legs[0], Leg(ghost, "5", "credit")])
        assert [Decimal("0.00"), Decimal("5.00")] == _balances(ledger, short, ghost)

    def test_with_no_currency_named_the_accounts_currency_is_learnt(self, ledger: Ledger) -> None:
        """Three EUR accounts, no currency argument: the posting applies in EUR."""
        house, player, rake = (_user(ledger, "100", "EUR"), _user(ledger, "0", "EUR"),
                               _user(ledger, "0", "EUR"))  # fmt: skip
        result = ledger.post(idempotency_key=unique(), legs=_round(house, player, rake))
        assert ("EUR", [Decimal("80.00"), Decimal("19.00")]) == (
            result.currency,
            _balances(ledger, house, player),
        )

    def test_bad_legs_are_refused_before_anything_is_sent(self, ledger: Ledger) -> None:
        """Unbalanced, one account, too many accounts, a bad type or amount: ValidationError."""
        house, player = _user(ledger), _user(ledger, "0")
        cases = [
            ([Leg(house, "20", "debit"), Leg(player, "19", "credit")], "legs", "balance"),
            ([Leg(house, "5", "debit"), Leg(house, "5", "credit")], "legs", "at least 2"),
            ([Leg(house, "1", "debit")], "legs", "at least 2"),
            ([Leg(house, "0.001", "debit"), Leg(player, "0.001", "credit")], "legs[0].amount",
             "decimals"),
            ("not legs", "legs", "sequence"),
            ([(house, "1", "debit")], "legs[0]", "Leg"),
        ]  # fmt: skip
        for legs, field, rule in cases:
            with pytest.raises(ValidationError, match=rule) as caught:
                ledger.post(idempotency_key=unique(), legs=legs)  # type: ignore[arg-type]
            assert field == caught.value.field
        with pytest.raises(ValidationError) as bad_type:
            Leg(house, "1", "refund")
        assert "type" == bad_type.value.field
        many = [Leg(house, str(MAX_ACCOUNTS), "debit")] + [
            Leg(f"u{index}", "1", "credit") for index in range(MAX_ACCOUNTS)
        ]
        with pytest.raises(ValidationError, match=f"at most {MAX_ACCOUNTS} accounts"):
            ledger.post(idempotency_key=unique(), legs=many)
        assert [Decimal("100.00"), Decimal("0.00")] == _balances(ledger, house, player)

    def test_the_most_accounts_one_posting_may_name_apply_together(self, ledger: Ledger) -> None:
        """49 accounts (48 players +1 each from the house): one posting, every balance moved;
        its refund (one action more: the posting's total) moves every one back."""
        assert 49 == MAX_ACCOUNTS
        house = _user(ledger)
        players = [_user(ledger, "0") for _ in range(MAX_ACCOUNTS - 1)]
        legs = [Leg(house, str(len(players)), "debit")] + [Leg(p, "1", "credit") for p in players]
        key = unique()
        ledger.post(idempotency_key=key, legs=legs)
        moved = _balances(ledger, house, players[-1])
        ledger.refund(idempotency_key=unique("rf"), of=key)
        assert [Decimal("52.00"), Decimal("1.00"), Decimal("100.00"), Decimal("0.00")] == [
            *moved,
            *_balances(ledger, house, players[-1]),
        ]

    def test_a_stored_posting_of_50_accounts_is_not_refundable_and_nothing_is_written(
        self, fresh_ledger: Ledger, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A posting of 50 accounts, as an earlier version wrote them (bound 50): its refund
        would need 101 actions, so it is NotRefundable saying so, and writes nothing."""
        monkeypatch.setattr(postings, "MAX_ACCOUNTS", 50)
        house = _user(fresh_ledger)
        players = [_user(fresh_ledger, "0") for _ in range(49)]
        legs = [Leg(house, "49", "debit")] + [Leg(p, "1", "credit") for p in players]
        key = unique()
        fresh_ledger.post(idempotency_key=key, legs=legs)
        before = scan_tables(fresh_ledger)
        with pytest.raises(NotRefundable, match="on 50 accounts would need 101 actions"):
            fresh_ledger.refund(idempotency_key=unique("rf"), of=key)
        assert before == scan_tables(fresh_ledger)


class TestMetadata:
    def test_a_posting_and_its_refund_carry_metadata_and_it_is_part_of_the_key(
        self, ledger: Ledger
    ) -> None:
        """Metadata comes back in both results and every leg's history; other metadata under
        the same key is a conflict naming it."""
        house, player, key, back = _user(ledger), _user(ledger, "0"), unique(), unique("rf")
        legs = [Leg(house, "5", "debit"), Leg(player, "5", "credit")]
        posted = ledger.post(idempotency_key=key, legs=legs, metadata={"round": "r-7"})
        refunded = ledger.refund(idempotency_key=back, of=key, metadata={"reason": "void"})
        assert ({"round": "r-7"}, {"reason": "void"}) == (posted.metadata, refunded.metadata)
        assert [{"reason": "void"}, {"round": "r-7"}] == [
            entry.metadata for entry in ledger.history(player).items
        ]
        with pytest.raises(IdempotencyConflict) as caught:
            ledger.post(idempotency_key=key, legs=legs, metadata={"round": "r-8"})
        assert ("metadata",) == caught.value.fields
        with pytest.raises(IdempotencyConflict) as again:
            ledger.refund(idempotency_key=back, of=key)
        assert ("metadata",) == again.value.fields
        with pytest.raises(ValidationError) as bad:
            ledger.post(idempotency_key=unique(), legs=legs, metadata={"bad key": "x"})
        assert "metadata" == bad.value.field


class TestCreditLimits:
    def test_postings_and_refunds_go_down_to_minus_the_limit_and_no_further(
        self, ledger: Ledger
    ) -> None:
        """A tab at 0 with a limit of 100 pays 60 in a posting; 50 more is refused naming the
        limit; a refund of the player's win takes the player to -45 on a limit of 50."""
        tab, player, rake = unique("tab"), unique("pl"), _user(ledger, "0")
        ledger.create_user(tab, balance="0", credit_limit="100")
        ledger.create_user(player, balance="0", credit_limit="50")
        win = unique()
        ledger.post(
            idempotency_key=win, legs=[Leg(tab, "60", "debit"), Leg(player, "60", "credit")]
        )
        with pytest.raises(InsufficientFunds) as caught:
            ledger.post(idempotency_key=unique(), legs=[Leg(tab, "50", "debit"),
                                                        Leg(rake, "50", "credit")])  # fmt: skip
        assert (tab, Decimal("-60.00"), Decimal("100.00")) == (
            caught.value.user_id,
            caught.value.balance,
            caught.value.credit_limit,
        )
        ledger.transact(idempotency_key=unique(), user_id=player, amount="45", type="debit")
        ledger.refund(idempotency_key=unique("rf"), of=win)
        assert [Decimal("0.00"), Decimal("-45.00")] == _balances(ledger, tab, player)

    def test_a_credit_past_the_largest_balance_is_refused_in_the_same_write(
        self, ledger: Ledger
    ) -> None:
        """An account at the largest USD balance credited 1 by a posting: ValidationError on
        legs, nothing moved."""
        largest = Decimal("9" * 36 + ".99")
        full, house = unique("full"), _user(ledger)
        ledger.create_user(full, balance=largest)
        with pytest.raises(ValidationError) as caught:
            ledger.post(idempotency_key=unique(), legs=[Leg(house, "1", "debit"),
                                                        Leg(full, "1", "credit")])  # fmt: skip
        assert "legs" == caught.value.field
        assert [Decimal("100.00"), largest] == _balances(ledger, house, full)
