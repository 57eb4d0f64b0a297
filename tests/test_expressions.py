"""The account updates and record puts built as text do what PynamoDB's expressions do.

The reference below states the account rules (exists, currency, floor with
credit limit, ceiling, hold entries, bound on holds; balance, available,
held, holdCount, entries) with PynamoDB's expression objects, as the engine
did before it wrote the text itself. Each case puts one account item twice,
applies the change once through each, and requires the same verdict and
the same item after.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import attrs
import pytest
from pynamodb.constants import ALL_OLD
from pynamodb.exceptions import TransactWriteError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.operand import Path, Value
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from dynaledger import Ledger
from dynaledger.errors import LedgerError
from dynaledger.models import build, load
from dynaledger.models.attributes import format_timestamp
from dynaledger.models.transaction import KIND_TRANSACT
from dynaledger.models.user import HOLD_PREFIX
from dynaledger.services import Context, expressions, movements
from dynaledger.services.engine import AccountChange, EntryChange, NewEntry
from dynaledger.services.expressions import LedgerWrite
from dynaledger.values import EntryType
from tests.conftest import unique

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


# The reference: the same rules in PynamoDB's expressions -------------------------------


def _entry(hold_id: str, *fields: str) -> Path:
    return Path([HOLD_PREFIX + hold_id, *fields])


def reference_condition(ctx: Context, change: AccountChange) -> Condition:
    model = ctx.models.user
    currency: Condition = model.currency == change.currency
    if change.currency == ctx.default_currency:
        currency = model.currency.does_not_exist() | currency
    condition: Condition = model.user_id.exists() & currency
    limited = model.credit_limit.exists()
    if change.floor is not None and change.floor > 0:
        funds = model.balance >= change.floor
        if ctx.opening_balance >= change.floor:
            funds |= model.balance.does_not_exist()
        condition &= (model.credit_limit.does_not_exist() & funds) | (
            limited & (model.available >= change.floor)
        )
    if change.ceiling is not None:
        within = model.balance <= change.ceiling
        if ctx.opening_balance <= change.ceiling:
            within |= model.balance.does_not_exist()
        if change.credit_limit is not None:  # a new limit bounds the balance itself
            condition &= within
        else:
            condition &= (model.credit_limit.does_not_exist() & within) | (
                limited & (model.available <= change.ceiling)
            )
    elif change.touch_balance and not (change.floor is not None and change.floor > 0):
        condition &= model.credit_limit.does_not_exist() | model.available.exists()
    for entry in change.entry_changes:
        condition &= _entry(entry.hold_id, "remaining") == Value(
            entry.expected, attribute=model.balance
        )
        if entry.expired_at is not None:
            condition &= _entry(entry.hold_id, "expiresAt") <= format_timestamp(entry.expired_at)
    for new in change.new_entries:
        condition &= _entry(new.hold_id).does_not_exist()
    if change.new_entries and change.max_holds is not None:
        room = change.max_holds - len(change.new_entries)
        condition &= model.hold_count.does_not_exist() | (model.hold_count <= room)
    return condition


def _plus_or_minus(attribute: Any, start: Any, delta: Decimal | int) -> Action:
    size = Value(abs(delta), attribute=attribute)
    return attribute.set(start + size if delta >= 0 else start - size)  # type: ignore[no-any-return]


def reference_actions(ctx: Context, change: AccountChange) -> list[Action]:
    model = ctx.models.user
    actions: list[Action] = [model.updated_at.set(NOW)]
    if change.touch_balance:
        # ``available`` where new starts from 0: only a limit makes it read.
        for attribute, begin in ((model.balance, ctx.opening_balance), (model.available, 0)):
            start = attribute | Decimal(begin)
            actions.append(_plus_or_minus(attribute, start, change.balance_delta))
    elif change.credit_limit is not None:
        limit = Value(change.credit_limit, attribute=model.credit_limit)
        actions.append(model.credit_limit.set(change.credit_limit))
        actions.append(model.available.set((model.balance | ctx.opening_balance) + limit))
    if change.held_delta:
        actions.append(_plus_or_minus(model.held, model.held | Decimal(0), change.held_delta))
    if change.count_delta:
        count = model.hold_count
        actions.append(_plus_or_minus(count, count | Decimal(0), change.count_delta))
    for new in change.new_entries:
        entry: dict[str, Any] = {"remaining": {"N": format(new.remaining, "f")}}
        if new.expires_at is not None:
            entry["expiresAt"] = {"S": format_timestamp(new.expires_at)}
        actions.append(_entry(new.hold_id).set(Value({"M": entry})))
    for changed in change.entry_changes:
        if changed.remaining == 0:
            actions.append(_entry(changed.hold_id).remove())
        else:
            remaining = Value(changed.remaining, attribute=model.balance)
            actions.append(_entry(changed.hold_id, "remaining").set(remaining))
    return actions


# Random accounts and changes ------------------------------------------------------------

HOLD_IDS = ["h1", "h2", "h3"]


def random_item(rng: random.Random) -> dict[str, Any]:
    """An account item as the ledger (or another client) may have left it; no key."""
    item: dict[str, Any] = {}
    if rng.random() < 0.8:
        item["balance"] = {"N": str(rng.choice([0, 1, 5, 99, 100, 150, 10**6]))}
    if rng.random() < 0.6:
        item["currency"] = {"S": rng.choice(["USD", "USD", "EUR"])}
    if rng.random() < 0.3:
        limit = rng.choice([0, 10, 50])
        item["creditLimit"] = {"N": str(limit)}
        balance = Decimal(item.get("balance", {"N": "100"})["N"])
        item["available"] = {"N": str(balance + limit)}
    if rng.random() < 0.5:
        held = 0
        for hold_id in rng.sample(HOLD_IDS, rng.randint(1, 2)):
            remaining = rng.choice([1, 5, 20])
            entry: dict[str, Any] = {"remaining": {"N": str(remaining)}}
            if rng.random() < 0.5:
                expires = NOW + timedelta(seconds=rng.choice([-60, 60]))
                entry["expiresAt"] = {"S": format_timestamp(expires)}
            item[HOLD_PREFIX + hold_id] = {"M": entry}
            held += remaining
        item["held"] = {"N": str(held)}
        item["holdCount"] = {"N": str(rng.choice([1, 2, 1000]))}
    return item


def random_change(rng: random.Random, user_id: str) -> AccountChange:
    amount = Decimal(rng.choice([1, 5, 20, 100, 101, 160]))
    debit = rng.random() < 0.5
    currency = rng.choice(["USD", "USD", "EUR"])
    entries: tuple[EntryChange, ...] = ()
    new: tuple[NewEntry, ...] = ()
    held = Decimal(0)
    if rng.random() < 0.3:
        hold_id = rng.choice(HOLD_IDS)
        expected = Decimal(rng.choice([1, 5, 20]))
        remaining = rng.choice([Decimal(0), expected - 1 if expected > 1 else Decimal(0)])
        expired = NOW if rng.random() < 0.5 else None
        entries = (EntryChange(hold_id, expected, remaining, expired),)
        held = remaining - expected
    if rng.random() < 0.3:
        expires = NOW + timedelta(hours=1) if rng.random() < 0.5 else None
        hold_id = rng.choice(
            [h for h in [*HOLD_IDS, "h4"] if h not in {e.hold_id for e in entries}]
        )
        new = (NewEntry(hold_id, amount, expires),)
        held += amount
    if rng.random() < 0.15:
        return AccountChange(user_id, currency, touch_balance=False,
                             credit_limit=Decimal(rng.choice([0, 25])))  # fmt: skip
    return AccountChange(
        user_id, currency,
        balance_delta=-amount if debit else amount,
        floor=amount if debit else None,
        ceiling=None if debit else Decimal(rng.choice([150, 10**6])),
        held_delta=held, new_entries=new, entry_changes=entries,
        max_holds=rng.choice([None, 2, 1000]),
    )  # fmt: skip


def _apply(
    ledger: Ledger, user_id: str, item: dict[str, Any] | None, send: Any
) -> tuple[str, dict[str, Any] | None]:
    """Put ``item`` (if any) as account ``user_id``, apply the update ``send`` adds, and
    return the verdict and the account's item after (without its key)."""
    ctx = ledger._ctx
    client = ledger.botocore_client
    key = {ctx.wire.user_key: {"S": user_id}}
    if item is not None:
        client.put_item(TableName=ctx.wire.users_table, Item={**item, **key})
    try:
        with LedgerWrite(connection=ctx.models.connection) as write:
            send(write)
        verdict = "applied"
    except TransactWriteError as error:
        reasons = error.cancellation_reasons or []
        verdict = "refused: " + ",".join(reason.code if reason else "None" for reason in reasons)
    after = client.get_item(TableName=ctx.wire.users_table, Key=key, ConsistentRead=True)
    stored: dict[str, Any] | None = after.get("Item")
    if stored is not None:
        stored.pop(ctx.wire.user_key)
    return verdict, stored


@pytest.mark.parametrize("seed", range(4))
def test_account_updates_agree_with_pynamodb_expressions(ledger: Ledger, seed: int) -> None:
    """Random accounts and changes: the text and PynamoDB's expressions give the same
    verdict and leave the same item, 60 cases per seed, some on missing accounts."""
    ctx = ledger._ctx
    rng = random.Random(seed)
    users = ctx.models.user
    verdicts = set()
    for _ in range(60):
        item = random_item(rng)
        ours, theirs = unique("ours"), unique("theirs")
        change = random_change(rng, ours)
        placed = None if rng.random() < 0.1 else item  # some accounts do not exist

        def ours_send(write: LedgerWrite, change: AccountChange = change) -> None:
            write.add_update(
                expressions.account_update(ctx.wire, change, opening=ctx.opening_balance,
                                           default_currency=ctx.default_currency, now=NOW)
            )  # fmt: skip

        def theirs_send(
            write: TransactWrite, change: AccountChange = change, user_id: str = theirs
        ) -> None:
            actions = reference_actions(ctx, change)
            condition = reference_condition(ctx, change)
            write.update(users(user_id), actions=actions, condition=condition,
                         return_values=ALL_OLD)  # fmt: skip

        got = _apply(ledger, ours, placed, ours_send)
        expected = _apply(ledger, theirs, placed, theirs_send)
        assert expected == got, (placed, change)
        verdicts.add(got[0])
    assert {"applied", "refused: ConditionalCheckFailed"} <= verdicts


def _entry_free_changes(rng: random.Random, count: int) -> list[AccountChange]:
    """Changes of every shape without hold entries: each field that may steer the text
    (currency, floor, ceiling, limit, held, the delta's sign) drawn independently."""
    changes = []
    for n in range(count):
        user_id = f"u{n}"
        currency = rng.choice(["USD", "EUR"])
        if rng.random() < 0.2:
            limit = Decimal(rng.choice([0, 25, 500]))
            ceiling = rng.choice([None, Decimal(50), Decimal(150)])
            changes.append(AccountChange(user_id, currency, touch_balance=False,
                                         credit_limit=limit, ceiling=ceiling))  # fmt: skip
            continue
        amount = Decimal(rng.choice(["0.01", "1", "99.99", "100", "100.01", "5000"]))
        delta = rng.choice([amount, -amount, Decimal(0)])
        changes.append(
            AccountChange(
                user_id, currency, balance_delta=delta,
                floor=rng.choice([None, Decimal(0), amount]),
                ceiling=rng.choice([None, Decimal(50), Decimal(150), 10**6 - amount]),
                held_delta=rng.choice([Decimal(0), amount, -amount]),
            )
        )  # fmt: skip
    return changes


def test_text_kept_per_shape_is_the_text_built_afresh(ledger: Ledger) -> None:
    """The update, condition and names reused across a ledger's changes of one shape
    equal what a fresh build gives for each change, over 400 random changes; a few
    shapes serve them all."""
    ctx = ledger._ctx
    shared = expressions.Wire.of(ctx.models)
    rng = random.Random(5)
    for change in _entry_free_changes(rng, 400):
        kwargs: dict[str, Any] = {"opening": ctx.opening_balance, "now": NOW,
                                  "default_currency": ctx.default_currency}  # fmt: skip
        fresh = expressions.account_update(expressions.Wire.of(ctx.models), change, **kwargs)
        assert fresh == expressions.account_update(shared, change, **kwargs), change
    assert 10 <= len(shared.account_texts) <= 200


def test_transact_items_filled_from_a_template_are_the_items_built_afresh(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A credit's or debit's put and update, filled in from its shape's template, equal
    what the plan's record put and account update give afresh, over 300 random transacts
    (both types, three currencies, with and without metadata, amounts on both sides of
    the opening balance and the largest amount); a few templates serve them all."""
    ctx = attrs.evolve(ledger._ctx)  # its own wire: no template kept yet
    sent: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def capture(_ctx: Context, put: dict[str, Any], update: dict[str, Any]) -> None:
        sent.append((put, update))

    monkeypatch.setattr(movements, "send_items", capture)
    rng = random.Random(11)
    for n in range(300):
        currency = rng.choice(["USD", "EUR", "JPY"])
        largest = ctx.currencies.max_amount(currency)
        text = rng.choice(["1", "99", "100", "100.01", "250.5", "7", f"{largest:f}"])
        if currency == "JPY":
            text = text.partition(".")[0]
        metadata = rng.choice([(), (("round", str(n)),), (("a", "1"), ("b", "two"))])
        request = movements.Request(
            kind=KIND_TRANSACT, key=f"k-{n}", user_id=rng.choice(["alice", "bob"]),
            amount=ctx.currencies.parse_amount(text, currency),
            type=rng.choice([EntryType.CREDIT, EntryType.DEBIT]), currency=currency,
            metadata=metadata,
        )  # fmt: skip
        movement = movements._Movement(ctx, request, request_id=f"r-{n}", now=NOW)
        record, refused = movement._send_transact()
        plan = movement.plan()
        fresh = expressions.Wire.of(ctx.models)
        expected = (
            expressions.record_put(fresh, plan.records[0]),
            expressions.account_update(fresh, plan.accounts[0], opening=ctx.opening_balance,
                                       default_currency=ctx.default_currency, now=NOW),
        )  # fmt: skip
        assert (expected, None) == (sent[-1], refused), request
        assert plan.records[0].attribute_values == record.attribute_values
    assert 4 <= len(ctx.wire.transact_templates) <= 12


def test_text_naming_other_values_than_given_is_refused(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shape whose text names a placeholder its values lack (a bug in this module) is
    refused with a LedgerError naming both, before anything is kept or sent."""
    ctx = ledger._ctx
    wire = expressions.Wire.of(ctx.models)
    real = expressions._account_values

    def without_now(*args: Any) -> dict[str, dict[str, Any]]:
        values = real(*args)
        del values[":now"]
        return values

    monkeypatch.setattr(expressions, "_account_values", without_now)
    change = AccountChange("u", "USD", balance_delta=Decimal(1), ceiling=Decimal(10))
    with pytest.raises(LedgerError, match=r"names \[.*':now'.*\], has \[.*\]"):
        expressions.account_update(wire, change, opening=ctx.opening_balance,
                                   default_currency="USD", now=NOW)  # fmt: skip
    assert {} == wire.account_texts


LIMITED = {"balance": {"N": "5"}, "creditLimit": {"N": "10"}, "available": {"N": "15"}}


@pytest.mark.parametrize(
    ("item", "delta", "floor", "ceiling", "verdict"),
    [
        ({}, -100, 100, None, "applied"),  # no balance: the opening 100 pays exactly 100
        ({}, -101, 101, None, "refused"),
        ({}, 1, None, 100, "applied"),  # the opening 100 is at the ceiling, not past it
        ({}, 1, None, 99, "refused"),
        (LIMITED, -15, 15, None, "applied"),  # down to minus the limit
        (LIMITED, -16, 16, None, "refused"),
        (LIMITED, 1, None, 15, "applied"),  # ``available`` is what the ceiling bounds
        (LIMITED, 1, None, 14, "refused"),
    ],
)
def test_floor_and_ceiling_at_their_edges(
    ledger: Ledger,
    *,
    item: dict[str, Any],
    delta: int,
    floor: int | None,
    ceiling: int | None,
    verdict: str,
) -> None:
    """At the floor and at the ceiling exactly, with and without a stored balance and a
    credit limit, both forms give the verdict the rules say."""
    ctx = ledger._ctx
    ours, theirs = unique("edge"), unique("edge")
    change = AccountChange(ours, "USD", balance_delta=Decimal(delta),
                           floor=None if floor is None else Decimal(floor),
                           ceiling=None if ceiling is None else Decimal(ceiling))  # fmt: skip
    got = _apply(ledger, ours, item, lambda write: write.add_update(
        expressions.account_update(ctx.wire, change, opening=ctx.opening_balance,
                                   default_currency="USD", now=NOW)))  # fmt: skip
    expected = _apply(ledger, theirs, item, lambda write: write.update(
        ctx.models.user(theirs), actions=reference_actions(ctx, change),
        condition=reference_condition(ctx, change), return_values=ALL_OLD))  # fmt: skip
    assert expected == got
    assert got[0].startswith(verdict)


def test_account_check_agrees_with_pynamodb(ledger: Ledger) -> None:
    """A condition check passes on an account of the currency (or of none, for the default
    currency) and fails on another currency or a missing account."""
    ctx = ledger._ctx
    cases = [({}, "USD"), ({}, "EUR"), ({"currency": {"S": "EUR"}}, "EUR"),
             ({"currency": {"S": "EUR"}}, "USD"), (None, "USD")]  # fmt: skip
    got = []
    for fields, currency in cases:
        user_id = unique("check")
        if fields is not None:
            item = {ctx.wire.user_key: {"S": user_id}, **fields}
            ledger.botocore_client.put_item(TableName=ctx.wire.users_table, Item=item)
        try:
            with LedgerWrite(connection=ctx.models.connection) as write:
                write.add_condition_check(
                    expressions.account_check(ctx.wire, user_id, currency, ctx.default_currency)
                )
            got.append(True)
        except TransactWriteError:
            got.append(False)
    assert [True, False, True, False, False] == got


def test_record_items_equal_pynamodb_serialization(ledger: Ledger) -> None:
    """A record built and serialized here is the item PynamoDB's constructor and
    serialize give, for every kind of field (strings, numbers, times, metadata)."""
    model = ledger._ctx.models.transaction
    fields: dict[str, Any] = {
        "idempotency_key": "k-1", "user_id": "alice", "amount": Decimal("12.30"),
        "type": "debit", "timestamp": NOW, "currency": "EUR", "status": "applied",
        "kind": "hold", "fingerprint": "f" * 64, "request_id": "r", "counterparty_id": None,
        "expires_at": NOW + timedelta(seconds=30), "remaining": Decimal("12.30"),
        "captured": Decimal(0), "metadata": {"round": "7"},
    }  # fmt: skip
    built = build(model, dict(fields))
    constructed = model(**fields)
    given = {name: value for name, value in constructed.attribute_values.items()
             if value is not None}  # fmt: skip
    assert given == built.attribute_values
    assert (None, None) == (built.counterparty_id, built.refunded)
    assert constructed.serialize() == expressions.record_item(ledger._ctx.wire, built)
    assert {"S": "k-1"} == expressions.record_item(ledger._ctx.wire, built)["idempotencyKey"]


def test_build_refuses_an_unknown_attribute(ledger: Ledger) -> None:
    """A misspelt field is an error, as with the model's constructor."""
    with pytest.raises(ValueError, match="no attribute 'amonut'"):
        build(ledger._ctx.models.transaction, {"idempotency_key": "k", "amonut": Decimal(1)})


def test_load_reads_items_as_from_raw_data(ledger: Ledger) -> None:
    """``load`` gives the values ``from_raw_data`` gives, skips NULLs, and refuses a
    value of the wrong DynamoDB type as PynamoDB does."""
    model = ledger._ctx.models.user
    item = {"userId": {"S": "u"}, "balance": {"N": "1.50"}, "currency": {"NULL": True},
            "createdAt": {"S": "2026-01-02T03:04:05.123Z"}, "hold:x": {"M": {}}}  # fmt: skip
    assert model.from_raw_data(item).attribute_values == load(model, item).attribute_values
    with pytest.raises(Exception, match="balance") as caught:
        load(model, {"userId": {"S": "u"}, "balance": {"S": "1"}})
    with pytest.raises(type(caught.value)):
        model.from_raw_data({"userId": {"S": "u"}, "balance": {"S": "1"}})
