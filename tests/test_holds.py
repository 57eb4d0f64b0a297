"""Holds: reserve now, capture or void later, expiry exact at read time; every error and replay."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import attrs
import botocore.exceptions
import pytest

from dynaledger import Hold, Ledger
from dynaledger.errors import (
    CurrencyMismatch,
    HoldClosed,
    HoldExceeded,
    HoldExpired,
    HoldNotFound,
    IdempotencyConflict,
    InsufficientFunds,
    TooManyHolds,
    UserNotFound,
    ValidationError,
)
from dynaledger.services import movements
from tests import faultproxy
from tests.conftest import FAST_RETRY, RequestCounter, operator_client, scan_tables, unique

START = datetime(2031, 5, 1, 12, 0, tzinfo=timezone.utc)


class Clock:
    """A clock tests move by hand."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def timed(ledger: Ledger, dynamodb_endpoint: str, clock: Clock) -> Ledger:
    """The session's tables through a ledger whose clock the test moves."""
    return Ledger(
        dynamodb_endpoint, table_prefix=ledger.settings.table_prefix, retry=FAST_RETRY,
        clock=clock,
    )  # fmt: skip


@pytest.fixture
def fresh_timed(ledger_factory: Callable[..., Ledger], clock: Clock) -> Ledger:
    """Tables of its own, with the test's clock: the writes-nothing checks scan every
    table, and the session's grow with the suite."""
    return ledger_factory(retry=FAST_RETRY, clock=clock)


def _user(ledger: Ledger, balance: str | None = "100", currency: str | None = None) -> str:
    user_id = unique("h")
    ledger.create_user(user_id, balance=balance, currency=currency)
    return user_id


def _figures(ledger: Ledger, user_id: str) -> tuple[Decimal, Decimal]:
    balance = ledger.get_user_balance(user_id)
    return balance.amount, balance.held


def _fill_item(ledger: Ledger, user_id: str, room: int) -> None:
    """Pad the account's item (an operator's ``padding`` attribute) to ``room`` bytes short
    of the largest item the server accepts, found by bisection (servers count 400 KB
    differently: moto allows 405,000 bytes)."""
    client, table = operator_client(ledger), ledger.table_names[0]

    def pad(size: int) -> bool:
        # Removed first: moto counts the value replaced as well as the new one.
        client.update_item(TableName=table, Key={"userId": {"S": user_id}},
                           UpdateExpression="REMOVE padding")  # fmt: skip
        try:
            client.update_item(TableName=table, Key={"userId": {"S": user_id}},
                               UpdateExpression="SET padding = :p",
                               ExpressionAttributeValues={":p": {"S": "x" * size}})  # fmt: skip
        except botocore.exceptions.ClientError:
            return False
        return True

    fits, too_large = 0, 420_000
    while too_large - fits > 1:
        middle = (fits + too_large) // 2
        fits, too_large = (middle, too_large) if pad(middle) else (fits, middle)
    assert pad(fits - room)


def _wide_hold_id() -> str:
    """A new hold id of 255 characters, about 1 KB of UTF-8 (its entry's size on the item)."""
    key = unique("w")
    return key + "\U0001f600" * (255 - len(key))


class TestHold:
    def test_a_hold_moves_spendable_into_held_and_reports_itself(
        self, timed: Ledger, clock: Clock
    ) -> None:
        """100 spendable, hold 30 for 60 s: 70 spendable, 30 held; the result says it all."""
        player, house, key = _user(timed), _user(timed, "0"), unique("bet")
        result = timed.hold(idempotency_key=key, user_id=player, amount="30", to_user_id=house,
                            timeout=60)  # fmt: skip
        assert (key, player, house, Decimal("30.00"), "USD", START,
                START + timedelta(seconds=60), False) == (
            result.hold_id, result.user_id, result.to_user_id, result.amount, result.currency,
            result.created_at, result.expires_at, result.replayed,
        )  # fmt: skip
        assert (Decimal("70.00"), Decimal("30.00")) == _figures(timed, player)

    def test_replay_returns_the_stored_hold_and_changes_nothing(self, timed: Ledger) -> None:
        """The same hold again: replayed=True, the original times, balances untouched."""
        player, key = _user(timed), unique("bet")
        first = timed.hold(idempotency_key=key, user_id=player, amount="5", timeout=timedelta(1))
        again = timed.hold(idempotency_key=key, user_id=player, amount="5", timeout=timedelta(1))
        assert (True, first.created_at, first.expires_at) == (
            again.replayed, again.created_at, again.expires_at,
        )  # fmt: skip
        assert (Decimal("95.00"), Decimal("5.00")) == _figures(timed, player)

    def test_the_same_key_for_another_hold_is_a_conflict_naming_the_fields(
        self, timed: Ledger
    ) -> None:
        """Another amount and timeout under a hold's key: IdempotencyConflict naming both."""
        player, key = _user(timed), unique("bet")
        timed.hold(idempotency_key=key, user_id=player, amount="5", timeout=30)
        with pytest.raises(IdempotencyConflict) as caught:
            timed.hold(idempotency_key=key, user_id=player, amount="6", timeout=31)
        assert ("amount", "timeout") == caught.value.fields
        with pytest.raises(IdempotencyConflict) as caught:
            timed.transact(idempotency_key=key, user_id=player, amount="5", type="debit")
        assert "kind" in caught.value.fields

    def test_a_hold_above_the_spendable_balance_is_refused_and_final_for_its_key(
        self, timed: Ledger
    ) -> None:
        """InsufficientFunds with the spendable balance; after a credit the key still refuses."""
        player, key = _user(timed, "10"), unique("bet")
        with pytest.raises(InsufficientFunds) as caught:
            timed.hold(idempotency_key=key, user_id=player, amount="11")
        assert (Decimal("10.00"), Decimal("11.00")) == (caught.value.balance, caught.value.amount)
        timed.transact(idempotency_key=unique("k"), user_id=player, amount="50", type="credit")
        with pytest.raises(InsufficientFunds):
            timed.hold(idempotency_key=key, user_id=player, amount="11")
        assert (Decimal("60.00"), Decimal("0.00")) == _figures(timed, player)

    def test_unknown_holder_or_payee_and_a_payee_in_another_currency_are_refused(
        self, fresh_timed: Ledger
    ) -> None:
        """UserNotFound for either account, CurrencyMismatch for a EUR payee; nothing written."""
        player, euro = _user(fresh_timed), _user(fresh_timed, "0", "EUR")
        before = scan_tables(fresh_timed)
        with pytest.raises(UserNotFound, match="ghost-holder"):
            fresh_timed.hold(idempotency_key=unique("k"), user_id="ghost-holder", amount="1")
        with pytest.raises(UserNotFound, match="ghost-payee"):
            fresh_timed.hold(idempotency_key=unique("k"), user_id=player, amount="1",
                             to_user_id="ghost-payee")  # fmt: skip
        with pytest.raises(CurrencyMismatch):
            fresh_timed.hold(
                idempotency_key=unique("k"), user_id=player, amount="1", to_user_id=euro
            )
        assert before == scan_tables(fresh_timed)

    @pytest.mark.parametrize(
        ("arguments", "field"),
        [
            ({"timeout": 0}, "timeout"),
            ({"timeout": 4e-7}, "timeout"),  # below a microsecond: expired at birth
            ({"timeout": -5}, "timeout"),
            ({"timeout": float("nan")}, "timeout"),
            ({"timeout": True}, "timeout"),
            ({"timeout": "60"}, "timeout"),
            ({"amount": "0"}, "amount"),
            ({"amount": "1.001"}, "amount"),
            ({"to_user_id": "self"}, "to_user_id"),
        ],
    )
    def test_bad_input_is_a_validation_error_naming_the_field(
        self, fresh_timed: Ledger, arguments: dict[str, object], field: str
    ) -> None:
        """Each malformed argument raises ValidationError for its field; nothing is written."""
        player = _user(fresh_timed)
        args: dict[str, object] = {"idempotency_key": unique("k"), "user_id": player,
                                   "amount": "1", **arguments}  # fmt: skip
        if args.get("to_user_id") == "self":
            args["to_user_id"] = player
        before = scan_tables(fresh_timed)
        with pytest.raises(ValidationError) as caught:
            fresh_timed.hold(**args)  # type: ignore[arg-type]
        assert field == caught.value.field
        assert before == scan_tables(fresh_timed)

    def test_an_account_whose_item_has_no_room_for_the_entry_is_too_many_holds(
        self, fresh_timed: Ledger
    ) -> None:
        """An account item 200 bytes short of 400 KB, a hold whose entry takes 1 KB (a wide
        id): TooManyHolds (item_full), as for the 1,000th hold; nothing written. A hold
        that fits is then placed."""
        player = _user(fresh_timed)
        _fill_item(fresh_timed, player, room=200)
        before = scan_tables(fresh_timed)
        with pytest.raises(TooManyHolds) as caught:
            fresh_timed.hold(idempotency_key=_wide_hold_id(), user_id=player, amount="1")
        assert (player, True, 1000) == (
            caught.value.user_id, caught.value.item_full, caught.value.limit,
        )  # fmt: skip
        assert before == scan_tables(fresh_timed)
        fresh_timed.hold(idempotency_key=unique("k"), user_id=player, amount="1")
        assert (Decimal("99.00"), Decimal("1.00")) == _figures(fresh_timed, player)

    def test_dynamodbs_cancellation_for_an_item_too_large_is_too_many_holds(
        self, timed: Ledger
    ) -> None:
        """DynamoDB cancels such a transaction with a ValidationError reason on the account
        (moto refuses the request whole): rewritten so here, TooManyHolds all the same."""
        player = _user(timed)
        _fill_item(timed, player, room=200)

        def as_dynamodb_cancels(parsed: dict[str, Any], **kwargs: Any) -> None:
            if parsed.get("Error", {}).get("Code") == "ValidationException":
                message = parsed["Error"]["Message"]
                parsed["Error"] = {"Code": "TransactionCanceledException",
                                   "Message": "Transaction cancelled, please refer "
                                              "cancellation reasons for specific reasons "
                                              "[None, ValidationError]"}  # fmt: skip
                parsed["CancellationReasons"] = [
                    {"Code": "None"}, {"Code": "ValidationError", "Message": message},
                ]  # fmt: skip

        events = timed.botocore_client.meta.events
        events.register("after-call.dynamodb.TransactWriteItems", as_dynamodb_cancels)
        try:
            with pytest.raises(TooManyHolds) as caught:
                timed.hold(idempotency_key=_wide_hold_id(), user_id=player, amount="1")
        finally:
            events.unregister("after-call.dynamodb.TransactWriteItems", as_dynamodb_cancels)
        assert (player, True) == (caught.value.user_id, caught.value.item_full)
        assert "has no room for another hold" in str(caught.value)

    def test_an_account_carries_at_most_max_holds(
        self, timed: Ledger, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Past the bound (lowered to 3 here) a hold raises TooManyHolds and holds nothing."""
        monkeypatch.setattr(movements, "MAX_HOLDS", 3)
        player = _user(timed)
        for _ in range(3):
            timed.hold(idempotency_key=unique("k"), user_id=player, amount="1")
        with pytest.raises(TooManyHolds, match="3 holds"):
            timed.hold(idempotency_key=unique("k"), user_id=player, amount="1")
        assert (Decimal("97.00"), Decimal("3.00")) == _figures(timed, player)


class TestCapture:
    def test_a_partial_then_a_final_capture_pay_the_payee_and_release_the_rest(
        self, timed: Ledger
    ) -> None:
        """Hold 30 to the house; capture 10 (not final), then 5 final: 15 back to the player."""
        player, house, hold_id = _user(timed), _user(timed, "0"), unique("bet")
        timed.hold(idempotency_key=hold_id, user_id=player, amount="30", to_user_id=house)
        first = timed.capture(idempotency_key=unique("c"), hold_id=hold_id, amount="10",
                              final=False)  # fmt: skip
        assert (Decimal("10.00"), Decimal("0.00"), Decimal("20.00")) == (
            first.amount, first.released, first.remaining,
        )  # fmt: skip
        assert (Decimal("70.00"), Decimal("20.00")) == _figures(timed, player)
        last = timed.capture(idempotency_key=unique("c"), hold_id=hold_id, amount="5")
        assert (Decimal("5.00"), Decimal("15.00"), Decimal("0.00")) == (
            last.amount, last.released, last.remaining,
        )  # fmt: skip
        assert (Decimal("85.00"), Decimal("0.00")) == _figures(timed, player)
        assert (Decimal("15.00"), Decimal("0.00")) == _figures(timed, house)
        hold = timed.get_hold(hold_id)
        assert ("captured", Decimal("15.00"), Decimal("15.00"), Decimal("0.00")) == (
            hold.status, hold.captured, hold.released, hold.remaining,
        )  # fmt: skip

    def test_a_capture_without_a_payee_is_a_debit_and_none_takes_everything(
        self, timed: Ledger
    ) -> None:
        """amount=None captures all that remains; the holder's total drops by it."""
        player, hold_id = _user(timed), unique("hold")
        timed.hold(idempotency_key=hold_id, user_id=player, amount="40")
        result = timed.capture(idempotency_key=unique("c"), hold_id=hold_id)
        assert (Decimal("40.00"), Decimal("0.00")) == (result.amount, result.released)
        assert (Decimal("60.00"), Decimal("0.00")) == _figures(timed, player)

    def test_a_non_final_capture_of_the_whole_remainder_closes_the_hold(
        self, timed: Ledger
    ) -> None:
        """final=False capturing all 25 (by amount, or None): the hold is captured and closed,
        and a later capture is HoldClosed('captured')."""
        player = _user(timed)
        for amount in ("25", None):
            hold_id = unique("hold")
            timed.hold(idempotency_key=hold_id, user_id=player, amount="25")
            result = timed.capture(idempotency_key=unique("c"), hold_id=hold_id, amount=amount,
                                   final=False)  # fmt: skip
            assert (Decimal("25.00"), Decimal("0.00"), Decimal("0.00")) == (
                result.amount, result.released, result.remaining,
            )  # fmt: skip
            assert "captured" == timed.get_hold(hold_id).status
            with pytest.raises(HoldClosed) as closed:
                timed.capture(idempotency_key=unique("c"), hold_id=hold_id, amount="1")
            assert "captured" == closed.value.status
        assert (Decimal("50.00"), Decimal("0.00")) == _figures(timed, player)

    def test_a_capture_above_the_remaining_amount_is_hold_exceeded(
        self, fresh_timed: Ledger
    ) -> None:
        """Capturing 11 of 10 remaining: HoldExceeded with both figures; nothing moves."""
        player, hold_id = _user(fresh_timed), unique("hold")
        fresh_timed.hold(idempotency_key=hold_id, user_id=player, amount="10")
        before = scan_tables(fresh_timed)
        with pytest.raises(HoldExceeded) as caught:
            fresh_timed.capture(idempotency_key=unique("c"), hold_id=hold_id, amount="11")
        assert (Decimal("10.00"), Decimal("11.00")) == (caught.value.remaining, caught.value.amount)
        assert before == scan_tables(fresh_timed)

    def test_an_unknown_hold_is_hold_not_found(self, timed: Ledger) -> None:
        """A capture, void or read of an id no hold has: HoldNotFound; a transact's key too."""
        player, key = _user(timed), unique("k")
        timed.transact(idempotency_key=key, user_id=player, amount="1", type="credit")
        for hold_id in ("no-such-hold", key):
            with pytest.raises(HoldNotFound):
                timed.capture(idempotency_key=unique("c"), hold_id=hold_id)
            with pytest.raises(HoldNotFound):
                timed.void(idempotency_key=unique("v"), hold_id=hold_id)
            with pytest.raises(HoldNotFound):
                timed.get_hold(hold_id)

    def test_capture_after_a_final_capture_or_a_void_is_hold_closed_saying_which(
        self, timed: Ledger
    ) -> None:
        """HoldClosed names 'captured' or 'voided'; nothing moves."""
        player = _user(timed)
        captured, voided = unique("hold"), unique("hold")
        timed.hold(idempotency_key=captured, user_id=player, amount="10")
        timed.hold(idempotency_key=voided, user_id=player, amount="10")
        timed.capture(idempotency_key=unique("c"), hold_id=captured, amount="4")
        timed.void(idempotency_key=unique("v"), hold_id=voided)
        with pytest.raises(HoldClosed, match="already captured"):
            timed.capture(idempotency_key=unique("c"), hold_id=captured, amount="1")
        with pytest.raises(HoldClosed, match="already voided"):
            timed.capture(idempotency_key=unique("c"), hold_id=voided)
        with pytest.raises(HoldClosed, match="already captured"):
            timed.void(idempotency_key=unique("v"), hold_id=captured)
        assert (Decimal("96.00"), Decimal("0.00")) == _figures(timed, player)

    def test_replay_after_each_terminal_state_returns_the_stored_result(
        self, timed: Ledger, clock: Clock
    ) -> None:
        """A capture's and a void's key replay their stored result after close and after expiry."""
        player = _user(timed)
        hold_id = unique("hold")
        timed.hold(idempotency_key=hold_id, user_id=player, amount="10", timeout=60)
        partial_key, final_key = unique("c"), unique("c")
        partial = timed.capture(idempotency_key=partial_key, hold_id=hold_id, amount="3",
                                final=False)  # fmt: skip
        final = timed.capture(idempotency_key=final_key, hold_id=hold_id, amount="2")
        other = unique("hold")
        timed.hold(idempotency_key=other, user_id=player, amount="10", timeout=60)
        void_key = unique("v")
        voided = timed.void(idempotency_key=void_key, hold_id=other)
        clock.advance(3600)  # and now both holds are past their expiry too
        again = [
            timed.capture(idempotency_key=partial_key, hold_id=hold_id, amount="3", final=False),
            timed.capture(idempotency_key=final_key, hold_id=hold_id, amount="2"),
            timed.void(idempotency_key=void_key, hold_id=other),
        ]
        assert [True, True, True] == [result.replayed for result in again]
        assert [partial, final, voided] == [attrs.evolve(r, replayed=False) for r in again]
        assert (Decimal("95.00"), Decimal("0.00")) == _figures(timed, player)

    def test_a_capture_key_reused_for_something_else_is_a_conflict(self, timed: Ledger) -> None:
        """Another amount, finality or hold under a capture's key: IdempotencyConflict."""
        player = _user(timed)
        hold_id, other = unique("hold"), unique("hold")
        timed.hold(idempotency_key=hold_id, user_id=player, amount="10")
        timed.hold(idempotency_key=other, user_id=player, amount="10")
        key = unique("c")
        timed.capture(idempotency_key=key, hold_id=hold_id, amount="3", final=False)
        cases = [
            ({"hold_id": hold_id, "amount": "4", "final": False}, ("amount",)),
            ({"hold_id": hold_id, "amount": "3", "final": True}, ("final",)),
            ({"hold_id": other, "amount": "3", "final": False}, ("hold_id",)),
        ]
        for arguments, fields in cases:
            with pytest.raises(IdempotencyConflict) as caught:
                timed.capture(idempotency_key=key, **arguments)  # type: ignore[arg-type]
            assert fields == caught.value.fields
        with pytest.raises(IdempotencyConflict) as caught:
            timed.void(idempotency_key=key, hold_id=hold_id)
        assert ("kind",) == caught.value.fields

    def test_a_payee_account_gone_is_user_not_found(self, timed: Ledger) -> None:
        """The payee's account must still exist at capture; nothing moves otherwise."""
        player, house = _user(timed), _user(timed, "0")
        hold_id = unique("hold")
        timed.hold(idempotency_key=hold_id, user_id=player, amount="10", to_user_id=house)
        # A hand deletion, from an operator's client (DeleteItem is no action of the
        # ledger's, and the IAM coverage test records what the ledgers send).
        operator_client(timed).delete_item(
            TableName=timed.table_names[0], Key={"userId": {"S": house}}
        )
        with pytest.raises(UserNotFound, match=house):
            timed.capture(idempotency_key=unique("c"), hold_id=hold_id)
        assert (Decimal("90.00"), Decimal("10.00")) == _figures(timed, player)

    def test_a_hold_edited_in_place_is_captured_as_read_not_as_remembered(
        self, timed: Ledger
    ) -> None:
        """The ledger placed a hold of 10 to the house; by hand the hold's currency becomes
        EUR in place (its requestId kept). This ledger's capture reads it, as a ledger that
        never saw it would: CurrencyMismatch, nothing moves; not a capture in USD."""
        player, house, hold_id = _user(timed), _user(timed, "0"), unique("hold")
        timed.hold(idempotency_key=hold_id, user_id=player, amount="10", to_user_id=house)
        operator_client(timed).update_item(
            TableName=timed.table_names[1], Key={"idempotencyKey": {"S": hold_id}},
            UpdateExpression="SET currency = :eur", ExpressionAttributeValues={
                ":eur": {"S": "EUR"}},
        )  # fmt: skip
        with pytest.raises(CurrencyMismatch):
            timed.capture(idempotency_key=unique("c"), hold_id=hold_id)
        assert [(Decimal("90.00"), Decimal("10.00")), (Decimal("0.00"), Decimal("0.00"))] == [
            _figures(timed, user) for user in (player, house)
        ]

    @pytest.mark.parametrize("form", ["2099-01-01T00:00:00Z", "2099-01-01T00:00:00.000Z"])
    def test_a_hold_whose_expiry_another_client_wrote_in_another_form_is_captured(
        self, timed: Ledger, clock: Clock, form: str
    ) -> None:
        """The hold's ``expiresAt`` rewritten by hand in another ISO-8601 form (no µs): the
        ledger that placed it and a ledger that reads it both capture, 10 of 10 each."""
        for capturing in ("known", "read"):
            player, hold_id = _user(timed), unique("hold")
            timed.hold(idempotency_key=hold_id, user_id=player, amount="10", timeout=3600)
            operator_client(timed).update_item(
                TableName=timed.table_names[1], Key={"idempotencyKey": {"S": hold_id}},
                UpdateExpression="SET expiresAt = :e", ExpressionAttributeValues={
                    ":e": {"S": form}},
            )  # fmt: skip
            ledger = timed if capturing == "known" else Ledger(
                timed.settings.endpoint_url, table_prefix=timed.settings.table_prefix,
                retry=FAST_RETRY, clock=clock,
            )  # fmt: skip
            captured = ledger.capture(idempotency_key=unique("c"), hold_id=hold_id)
            assert (capturing, Decimal("10.00"), (Decimal("90.00"), Decimal("0.00"))) == (
                capturing, captured.amount, _figures(timed, player),
            )  # fmt: skip


class TestExpiry:
    def test_from_the_expiry_instant_the_money_is_spendable_and_captures_are_refused(
        self, timed: Ledger, clock: Clock
    ) -> None:
        """One microsecond before: held; at the instant: spendable, HoldExpired, status expired."""
        player, hold_id = _user(timed), unique("hold")
        timed.hold(idempotency_key=hold_id, user_id=player, amount="30", timeout=60)
        clock.advance(60 - 1e-6)
        assert (Decimal("70.00"), Decimal("30.00")) == _figures(timed, player)
        assert "active" == timed.get_hold(hold_id).status
        clock.advance(1e-6)
        assert (Decimal("100.00"), Decimal("0.00")) == _figures(timed, player)
        with pytest.raises(HoldExpired):
            timed.capture(idempotency_key=unique("c"), hold_id=hold_id)
        with pytest.raises(HoldExpired):
            timed.void(idempotency_key=unique("v"), hold_id=hold_id)
        hold = timed.get_hold(hold_id)
        assert ("expired", Decimal("0.00"), Decimal("30.00")) == (
            hold.status, hold.remaining, hold.released,
        )  # fmt: skip
        assert [] == timed.holds(player)

    def test_a_debit_needing_expired_holds_releases_them_in_the_same_call(
        self, timed: Ledger, clock: Clock
    ) -> None:
        """Balance 10 + 90 in expired holds: a debit of 95 succeeds; history shows the expiries."""
        player = _user(timed)
        first, second = unique("hold"), unique("hold")
        timed.hold(idempotency_key=first, user_id=player, amount="50", timeout=10)
        timed.hold(idempotency_key=second, user_id=player, amount="40", timeout=20)
        clock.advance(20)
        timed.transact(idempotency_key=unique("d"), user_id=player, amount="95", type="debit")
        assert (Decimal("5.00"), Decimal("0.00")) == _figures(timed, player)
        kinds = [(e.kind, e.hold_id) for e in timed.history(player).items if e.kind == "expiry"]
        assert sorted([("expiry", first), ("expiry", second)]) == sorted(kinds)
        assert timed.reconcile([player]).ok

    def test_only_the_oldest_expired_holds_needed_are_released(
        self, timed: Ledger, clock: Clock
    ) -> None:
        """Needing 15 more, with expired holds of 20 (older) and 30: only the 20 is released."""
        player = _user(timed, "50")
        older, newer = unique("hold"), unique("hold")
        timed.hold(idempotency_key=older, user_id=player, amount="20", timeout=5)
        timed.hold(idempotency_key=newer, user_id=player, amount="30", timeout=6)
        clock.advance(10)
        timed.transfer(idempotency_key=unique("t"), from_user_id=player,
                       to_user_id=_user(timed), amount="15")  # fmt: skip
        assert (Decimal("35.00"), Decimal("0.00")) == _figures(timed, player)
        expiries = {e.hold_id for e in timed.history(player).items if e.kind == "expiry"}
        assert {older} == expiries

    def test_a_debit_beyond_even_the_expired_holds_is_refused_with_the_spendable_balance(
        self, timed: Ledger, clock: Clock
    ) -> None:
        """Spendable 100 (70 + 30 expired): a debit of 101 is InsufficientFunds(100)."""
        player = _user(timed)
        timed.hold(idempotency_key=unique("hold"), user_id=player, amount="30", timeout=1)
        clock.advance(1)
        with pytest.raises(InsufficientFunds) as caught:
            timed.transact(idempotency_key=unique("d"), user_id=player, amount="101",
                           type="debit")  # fmt: skip
        assert Decimal("100.00") == caught.value.balance

    def test_expire_holds_releases_writes_history_and_is_idempotent(
        self, timed: Ledger, clock: Clock
    ) -> None:
        """Two expired holds and a live one: both released once; a second run releases none."""
        player = _user(timed)
        live = unique("hold")
        for timeout in (1, 2):
            timed.hold(idempotency_key=unique("hold"), user_id=player, amount="10",
                       timeout=timeout)  # fmt: skip
        timed.hold(idempotency_key=live, user_id=player, amount="10", timeout=100)
        clock.advance(5)
        report = timed.expire_holds([player])
        assert (1, 1, 2) == (report.checked, report.accounts, report.released)
        assert (0, 0) == (timed.expire_holds([player]).released,
                          timed.expire_holds([player]).accounts)  # fmt: skip
        assert (Decimal("90.00"), Decimal("10.00")) == _figures(timed, player)
        assert [live] == [hold.hold_id for hold in timed.holds(player)]
        assert timed.reconcile([player]).ok

    def test_expire_holds_over_the_whole_table_finds_accounts_with_holds(
        self, fresh_ledger: Ledger, clock: Clock
    ) -> None:
        """With no ids, a Scan finds the accounts holding money; expired holds are released."""
        ledger = Ledger(fresh_ledger.settings.endpoint_url, retry=FAST_RETRY, clock=clock,
                        table_prefix=fresh_ledger.settings.table_prefix)  # fmt: skip
        holder, idle = _user(ledger), _user(ledger)
        ledger.hold(idempotency_key=unique("hold"), user_id=holder, amount="5", timeout=1)
        clock.advance(1)
        report = ledger.expire_holds()
        assert (1, 1, 1) == (report.checked, report.accounts, report.released)
        assert (Decimal("100.00"), Decimal("0.00")) == _figures(ledger, holder)
        assert Decimal("100.00") == ledger.get_user_balance(idle).amount


class TestReading:
    def test_holds_lists_the_active_unexpired_holds(self, timed: Ledger, clock: Clock) -> None:
        """Captured, voided and expired holds are not listed; the live one is, with its state."""
        player, house = _user(timed), _user(timed, "0")
        ids = [unique("hold") for _ in range(4)]
        timed.hold(idempotency_key=ids[0], user_id=player, amount="1")
        timed.hold(idempotency_key=ids[1], user_id=player, amount="2")
        timed.hold(idempotency_key=ids[2], user_id=player, amount="3", timeout=5)
        timed.hold(idempotency_key=ids[3], user_id=player, amount="4", to_user_id=house,
                   timeout=50)  # fmt: skip
        timed.capture(idempotency_key=unique("c"), hold_id=ids[0])
        timed.void(idempotency_key=unique("v"), hold_id=ids[1])
        timed.capture(idempotency_key=unique("c"), hold_id=ids[3], amount="1", final=False)
        clock.advance(5)
        assert [
            Hold(ids[3], player, house, Decimal("4.00"), "USD", "active", Decimal("3.00"),
                 Decimal("1.00"), Decimal("0.00"), START, START + timedelta(seconds=50)),
        ] == timed.holds(player)  # fmt: skip

    def test_history_lists_hold_capture_release_and_void_with_kind_and_hold(
        self, timed: Ledger
    ) -> None:
        """Each entry carries its kind and hold_id; transacts keep kind None; reconcile OK."""
        player, house = _user(timed), _user(timed, "0")
        bet, other, capture_key, void_key = (unique(n) for n in ("bet", "bet", "c", "v"))
        timed.hold(idempotency_key=bet, user_id=player, amount="10", to_user_id=house)
        timed.capture(idempotency_key=capture_key, hold_id=bet, amount="4")
        timed.hold(idempotency_key=other, user_id=player, amount="5")
        timed.void(idempotency_key=void_key, hold_id=other)
        credit = unique("k")
        timed.transact(idempotency_key=credit, user_id=player, amount="1", type="credit")
        seen = sorted(
            (str(e.kind), e.hold_id or "", e.idempotency_key, e.type.value, e.amount)
            for e in timed.history(player).items
        )
        assert sorted([
            ("hold", bet, bet, "debit", Decimal("10.00")),
            ("capture", bet, capture_key, "debit", Decimal("4.00")),
            ("release", bet, capture_key, "credit", Decimal("6.00")),
            ("hold", other, other, "debit", Decimal("5.00")),
            ("void", other, void_key, "credit", Decimal("5.00")),
            ("None", "", credit, "credit", Decimal("1.00")),
        ]) == seen  # fmt: skip
        payee = [(e.kind, e.hold_id, e.idempotency_key, e.amount)
                 for e in timed.history(house).items]  # fmt: skip
        assert [("capture", bet, capture_key, Decimal("4.00"))] == payee
        assert timed.reconcile([player, house]).ok

    def test_reconcile_reports_a_held_figure_that_disagrees(self, timed: Ledger) -> None:
        """A hand edit of ``held`` is a mismatch of field 'held' with both figures."""
        player = _user(timed)
        timed.hold(idempotency_key=unique("hold"), user_id=player, amount="10")
        timed.botocore_client.update_item(
            TableName=timed.table_names[0], Key={"userId": {"S": player}},
            UpdateExpression="SET held = :h", ExpressionAttributeValues={":h": {"N": "12"}},
        )  # fmt: skip
        report = timed.reconcile([player])
        assert [("held", Decimal("10.00"), Decimal("12.00"))] == [
            (m.field, m.expected, m.actual) for m in report.mismatches
        ]


def _moved_on(timed: Ledger, clock: Clock, captured: str) -> str:
    """A hold of 5 this ledger placed (and knows), of which another ledger captured some."""
    player, house = _user(timed), _user(timed, "0")
    hold_id = unique("h")
    timed.hold(idempotency_key=hold_id, user_id=player, amount="5", to_user_id=house)
    other = Ledger(timed.settings.endpoint_url, table_prefix=timed.settings.table_prefix,
                   retry=FAST_RETRY, clock=clock)  # fmt: skip
    other.capture(idempotency_key=unique("c"), hold_id=hold_id, amount=captured, final=False)
    return hold_id


class TestCost:
    def test_hold_capture_and_void_cost_their_requests(
        self, timed: Ledger, count_requests: Callable[[Ledger], RequestCounter]
    ) -> None:
        """Hold: 1 request, and 1 on replay. Capture and void of a hold this ledger placed: 1
        TransactWriteItems; a replay while the hold is open: the same 1 write finds the key
        taken; once it is closed: 1 BatchGetItem reads the key. A balance read stays 1."""
        counter = count_requests(timed)
        player, house = _user(timed), _user(timed, "0")
        hold_id, other, capture_key, void_key = (unique(n) for n in ("h", "h", "c", "v"))
        calls: dict[str, Callable[[], object]] = {
            "hold": lambda: timed.hold(idempotency_key=hold_id, user_id=player, amount="5",
                                       to_user_id=house, timeout=60),
            "hold replay": lambda: timed.hold(idempotency_key=hold_id, user_id=player,
                                              amount="5", to_user_id=house, timeout=60),
            "capture": lambda: timed.capture(idempotency_key=capture_key, hold_id=hold_id,
                                             amount="2", final=False),
            "capture replay": lambda: timed.capture(idempotency_key=capture_key, hold_id=hold_id,
                                                    amount="2", final=False),
            "balance": lambda: timed.get_user_balance(player),
            "other hold": lambda: timed.hold(idempotency_key=other, user_id=player, amount="1"),
            "void": lambda: timed.void(idempotency_key=void_key, hold_id=other),
            "void replay": lambda: timed.void(idempotency_key=void_key, hold_id=other),
        }  # fmt: skip
        costs = {}
        for name, call in calls.items():
            counter.reset()
            call()
            costs[name] = dict(counter.by_operation)
        write, read = {"TransactWriteItems": 1}, {"BatchGetItem": 1}
        assert {
            "hold": write, "hold replay": write,
            "capture": write, "capture replay": write,
            "balance": {"GetItem": 1},
            "other hold": write, "void": write, "void replay": read,
        } == costs  # fmt: skip

    def test_a_ledger_that_never_saw_the_hold_reads_it_once(
        self, timed: Ledger, clock: Clock, count_requests: Callable[[Ledger], RequestCounter]
    ) -> None:
        """Another ledger (another process) captures: 2 requests, the BatchGetItem of the
        hold and the key, then the write; it then knows the hold, so its next capture is 1."""
        player, house = _user(timed), _user(timed, "0")
        hold_id = unique("h")
        timed.hold(idempotency_key=hold_id, user_id=player, amount="5", to_user_id=house)
        other = Ledger(timed.settings.endpoint_url, table_prefix=timed.settings.table_prefix,
                       retry=FAST_RETRY, clock=clock)  # fmt: skip
        other.transact(idempotency_key=unique("t"), user_id=house, amount="1", type="credit")
        counter = count_requests(other)  # after its one check of the deployment's settings
        costs = []
        for part in ("1", "2"):
            counter.reset()
            other.capture(idempotency_key=unique("c"), hold_id=hold_id, amount=part, final=False)
            costs.append(dict(counter.by_operation))
        assert [{"BatchGetItem": 1, "TransactWriteItems": 1}, {"TransactWriteItems": 1}] == costs
        assert Decimal("2.00") == timed.get_hold(hold_id).remaining

    def test_a_capture_after_another_ledger_moved_the_hold_on_reads_it_again(
        self, timed: Ledger, clock: Clock, count_requests: Callable[[Ledger], RequestCounter]
    ) -> None:
        """This ledger knows the hold at 5; another captures 4 of it. This ledger's capture
        of 2 is refused by the write's conditions, reads the hold (1 left) and raises
        HoldExceeded naming what is left: nothing is captured twice."""
        hold_id = _moved_on(timed, clock, captured="4")
        counter = count_requests(timed)
        with pytest.raises(HoldExceeded) as refused:
            timed.capture(idempotency_key=unique("c"), hold_id=hold_id, amount="2", final=False)
        assert (Decimal("1.00"), Decimal("2.00")) == (refused.value.remaining,
                                                      refused.value.amount)  # fmt: skip
        assert {"TransactWriteItems": 1, "BatchGetItem": 1} == dict(counter.by_operation)
        assert (Decimal("1.00"), Decimal("4.00")) == (
            timed.get_hold(hold_id).remaining,
            timed.get_hold(hold_id).captured,
        )

    def test_a_capture_the_moved_hold_still_covers_costs_three_requests(
        self, timed: Ledger, clock: Clock, count_requests: Callable[[Ledger], RequestCounter]
    ) -> None:
        """Another ledger captured 1 of the 5 this ledger knows: its capture of 2 is the
        refused write, the read, and the write again; 2 are captured, 2 remain."""
        hold_id = _moved_on(timed, clock, captured="1")
        counter = count_requests(timed)
        result = timed.capture(idempotency_key=unique("c"), hold_id=hold_id, amount="2",
                               final=False)  # fmt: skip
        assert ({"TransactWriteItems": 2, "BatchGetItem": 1}, Decimal("2.00")) == (
            dict(counter.by_operation), result.amount,
        )  # fmt: skip
        assert Decimal("2.00") == timed.get_hold(hold_id).remaining

    def test_a_knowing_ledger_raises_what_a_reading_ledger_raises(
        self, timed: Ledger, clock: Clock
    ) -> None:
        """Another ledger captured the whole hold, then the payee's account was deleted by
        hand. This ledger, which still knows the hold as active, raises HoldClosed, as a
        ledger reading the hold does, not UserNotFound for the payee its write named."""
        player, house = _user(timed), _user(timed, "0")
        hold_id = unique("h")
        timed.hold(idempotency_key=hold_id, user_id=player, amount="5", to_user_id=house)
        other = Ledger(timed.settings.endpoint_url, table_prefix=timed.settings.table_prefix,
                       retry=FAST_RETRY, clock=clock)  # fmt: skip
        other.capture(idempotency_key=unique("c"), hold_id=hold_id)
        operator_client(timed).delete_item(TableName=timed.table_names[0],
                                           Key={"userId": {"S": house}})  # fmt: skip
        errors = []
        for ledger in (timed, other):
            with pytest.raises(HoldClosed) as closed:
                ledger.capture(idempotency_key=unique("c"), hold_id=hold_id)
            errors.append(closed.value.status)
        assert ["captured", "captured"] == errors


class TestLostReplies:
    @pytest.mark.parametrize("fault", [faultproxy.DROP_AFTER_COMMIT, faultproxy.CONFLICT])
    def test_hold_capture_and_void_apply_once_when_a_reply_is_lost_or_conflicts(
        self, timed: Ledger, dynamodb_endpoint: str, clock: Clock, fault: str
    ) -> None:
        """Each first write committed with its reply dropped (or cancelled by a conflict): the
        retry reports the call's own success (replayed=False) and nothing applies twice."""
        player, house = _user(timed), _user(timed, "0")
        hold_id, other = unique("hold"), unique("hold")
        with faultproxy.fault_proxy(dynamodb_endpoint, faultproxy.scripted(*[fault] * 4)) as proxy:
            through = Ledger(proxy.url, table_prefix=timed.settings.table_prefix,
                             retry=FAST_RETRY, clock=clock)  # fmt: skip
            results = [
                through.hold(idempotency_key=hold_id, user_id=player, amount="30",
                             to_user_id=house, timeout=60),
                through.capture(idempotency_key=unique("c"), hold_id=hold_id, amount="10"),
                through.hold(idempotency_key=other, user_id=player, amount="5"),
                through.void(idempotency_key=unique("v"), hold_id=other),
            ]  # fmt: skip
            assert 4 == proxy.injected[fault]
        assert [False] * 4 == [result.replayed for result in results]
        assert (Decimal("90.00"), Decimal("0.00")) == _figures(timed, player)
        assert (Decimal("10.00"), Decimal("0.00")) == _figures(timed, house)
        assert timed.reconcile([player, house]).ok


class TestClockSkew:
    def test_a_fast_clock_releases_and_a_slow_clock_can_no_longer_capture(
        self, timed: Ledger, dynamodb_endpoint: str, clock: Clock
    ) -> None:
        """A client 5 s ahead sees the hold expired and releases it; the client behind, to
        which it is still live, is refused (HoldExpired): never both."""
        player, house, hold_id = _user(timed), _user(timed, "0"), unique("hold")
        timed.hold(idempotency_key=hold_id, user_id=player, amount="10", to_user_id=house,
                   timeout=60)  # fmt: skip
        ahead = Clock()
        ahead.now = clock.now + timedelta(seconds=62)
        fast = Ledger(dynamodb_endpoint, table_prefix=timed.settings.table_prefix,
                      retry=FAST_RETRY, clock=ahead)  # fmt: skip
        clock.advance(57)  # the slow client: 3 s before the expiry
        assert 1 == fast.expire_holds([player]).released
        with pytest.raises(HoldExpired):
            timed.capture(idempotency_key=unique("c"), hold_id=hold_id)
        assert (Decimal("100.00"), Decimal("0.00")) == _figures(timed, player)
        assert Decimal("0.00") == timed.get_user_balance(house).amount

    def test_a_slow_clock_captures_first_and_the_fast_release_skips_it(
        self, timed: Ledger, dynamodb_endpoint: str, clock: Clock
    ) -> None:
        """The capture lands first: the client ahead then finds nothing to release."""
        player, house, hold_id = _user(timed), _user(timed, "0"), unique("hold")
        timed.hold(idempotency_key=hold_id, user_id=player, amount="10", to_user_id=house,
                   timeout=60)  # fmt: skip
        clock.advance(59)
        timed.capture(idempotency_key=unique("c"), hold_id=hold_id)
        ahead = Clock()
        ahead.now = clock.now + timedelta(seconds=5)
        fast = Ledger(dynamodb_endpoint, table_prefix=timed.settings.table_prefix,
                      retry=FAST_RETRY, clock=ahead)  # fmt: skip
        assert 0 == fast.expire_holds([player]).released
        assert (Decimal("90.00"), Decimal("10.00")) == (
            timed.get_user_balance(player).amount, timed.get_user_balance(house).amount,
        )  # fmt: skip
        assert "captured" == fast.get_hold(hold_id).status


class TestConcurrentExpiry:
    def test_expire_holds_run_from_four_threads_releases_each_hold_once(
        self, timed: Ledger, clock: Clock
    ) -> None:
        """Four concurrent runs over 6 expired holds: 6 releases in all, 6 expiry entries."""
        player = _user(timed)
        for _ in range(6):
            timed.hold(idempotency_key=unique("hold"), user_id=player, amount="5", timeout=1)
        clock.advance(1)
        with ThreadPoolExecutor(4) as pool:
            reports = list(pool.map(lambda _: timed.expire_holds([player]), range(4)))
        assert 6 == sum(report.released for report in reports)
        expiries = [e for e in timed.history(player).items if e.kind == "expiry"]
        assert 6 == len(expiries)
        assert (Decimal("100.00"), Decimal("0.00")) == _figures(timed, player)
        assert timed.reconcile([player]).ok


class TestCaptureInput:
    @pytest.mark.parametrize(
        ("arguments", "field"),
        [
            ({"amount": "0"}, "amount"),
            ({"amount": "1.001"}, "amount"),
            ({"amount": "NaN"}, "amount"),
            ({"final": "yes"}, "final"),
            ({"hold_id": ""}, "hold_id"),
            ({"idempotency_key": "a\nb"}, "idempotency_key"),
        ],
    )
    def test_bad_capture_input_is_a_validation_error_and_writes_nothing(
        self, fresh_timed: Ledger, arguments: dict[str, object], field: str
    ) -> None:
        """Each malformed argument names its field; the hold is untouched."""
        player, hold_id = _user(fresh_timed), unique("hold")
        fresh_timed.hold(idempotency_key=hold_id, user_id=player, amount="10")
        before = scan_tables(fresh_timed)
        with pytest.raises(ValidationError) as caught:
            fresh_timed.capture(**{"idempotency_key": unique("c"), "hold_id": hold_id, **arguments})  # type: ignore[arg-type]
        assert field == caught.value.field
        assert before == scan_tables(fresh_timed)

    def test_a_yen_hold_refuses_a_capture_with_decimals(self, timed: Ledger) -> None:
        """The amount is judged by the hold's currency: 0.5 JPY is a ValidationError."""
        player, hold_id = _user(timed, "1000", "JPY"), unique("hold")
        timed.hold(idempotency_key=hold_id, user_id=player, amount="100")
        with pytest.raises(ValidationError):
            timed.capture(idempotency_key=unique("c"), hold_id=hold_id, amount="0.5")
        assert (Decimal("900"), Decimal("100")) == _figures(timed, player)


class TestAsync:
    def test_async_ledger_holds_captures_and_voids(self, timed: Ledger) -> None:
        """AsyncLedger has the holds operations too, with the same results."""
        from dynaledger import AsyncLedger

        player, house = _user(timed), _user(timed, "0")
        bet, other = unique("bet"), unique("bet")

        async def scenario() -> tuple[Decimal, Decimal, str, int]:
            async with AsyncLedger(timed) as ledger:
                await ledger.hold(idempotency_key=bet, user_id=player, amount="10",
                                  to_user_id=house, timeout=60)  # fmt: skip
                await ledger.hold(idempotency_key=other, user_id=player, amount="5")
                captured = await ledger.capture(idempotency_key=unique("c"), hold_id=bet)
                voided = await ledger.void(idempotency_key=unique("v"), hold_id=other)
                state = await ledger.get_hold(other)
                listed = await ledger.holds(player)
                report = await ledger.expire_holds([player])
                return captured.amount, voided.released, state.status, len(listed) + report.released

        assert (Decimal("10.00"), Decimal("5.00"), "voided", 0) == asyncio.run(scenario())
