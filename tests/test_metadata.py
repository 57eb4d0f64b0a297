"""Metadata on movements: short strings stored with the record, returned, bounded, and
part of what an idempotency key stands for."""

from __future__ import annotations

from typing import Any

import pytest

from dynaledger import Ledger, Leg
from dynaledger.cli import main
from dynaledger.errors import IdempotencyConflict, InsufficientFunds, ValidationError
from tests.conftest import unique

ROUND = {"round": "r-81", "provider_tx": "pp:551"}


def _funded(ledger: Ledger, balance: str = "100") -> str:
    user_id = unique("meta")
    ledger.create_user(user_id, balance=balance)
    return user_id


class TestStoredAndReturned:
    def test_a_credit_stores_its_metadata_as_a_map_and_returns_it(self, ledger: Ledger) -> None:
        """The record holds metadata as a DynamoDB map of strings; result and history show it."""
        user_id = _funded(ledger)
        key = unique("k")
        result = ledger.transact(idempotency_key=key, user_id=user_id, amount=5, type="credit",
                                 metadata=ROUND)  # fmt: skip
        raw = ledger.botocore_client.get_item(
            TableName=ledger.table_names[1], Key={"idempotencyKey": {"S": key}}
        )["Item"]
        assert {"M": {"provider_tx": {"S": "pp:551"}, "round": {"S": "r-81"}}} == raw["metadata"]
        (entry,) = ledger.history(user_id).items
        assert (ROUND, ROUND) == (result.metadata, entry.metadata)

    def test_a_replay_returns_the_stored_metadata(self, ledger: Ledger) -> None:
        """The same request again (same metadata, any order) replays with that metadata."""
        user_id = _funded(ledger)
        key = unique("k")
        ledger.transact(idempotency_key=key, user_id=user_id, amount=5, type="debit",
                        metadata=ROUND)  # fmt: skip
        reordered = dict(reversed(list(ROUND.items())))
        again = ledger.transact(idempotency_key=key, user_id=user_id, amount=5, type="debit",
                                metadata=reordered)  # fmt: skip
        assert (True, ROUND) == (again.replayed, again.metadata)

    def test_a_results_metadata_is_the_callers_own_copy(self, ledger: Ledger) -> None:
        """Editing a result's metadata changes neither the record the ledger remembers
        (for a later capture or refund) nor any other result."""
        user_id = _funded(ledger)
        credit = ledger.transact(idempotency_key=unique("k"), user_id=user_id, amount=5,
                                 type="credit", metadata={"a": "1"})  # fmt: skip
        held = ledger.hold(idempotency_key=unique("h"), user_id=user_id, amount=5,
                           metadata={"b": "2"})  # fmt: skip
        credit.metadata["a"] = "edited"
        held.metadata["b"] = "edited"
        remembered = [
            ledger._ctx.known.get(key).metadata  # type: ignore[union-attr]
            for key in (credit.idempotency_key, held.hold_id)
        ]
        assert [{"a": "1"}, {"b": "2"}] == remembered

    def test_no_metadata_is_an_empty_mapping_and_stores_nothing(self, ledger: Ledger) -> None:
        """Without metadata the result shows {} and the record has no metadata attribute."""
        user_id = _funded(ledger)
        key = unique("k")
        result = ledger.transact(idempotency_key=key, user_id=user_id, amount=1, type="credit")
        raw = ledger.botocore_client.get_item(
            TableName=ledger.table_names[1], Key={"idempotencyKey": {"S": key}}
        )["Item"]
        assert ({}, False) == (result.metadata, "metadata" in raw)

    def test_every_movement_carries_it(self, ledger: Ledger) -> None:
        """transfer, hold, capture and void store and return their own metadata."""
        payer, payee = _funded(ledger), _funded(ledger)
        moved = ledger.transfer(idempotency_key=unique("t"), from_user_id=payer,
                                to_user_id=payee, amount=1, metadata={"a": "1"})  # fmt: skip
        held = ledger.hold(idempotency_key=unique("h"), user_id=payer, amount=5,
                           to_user_id=payee, metadata={"b": "2"})  # fmt: skip
        captured = ledger.capture(idempotency_key=unique("c"), hold_id=held.hold_id, amount=2,
                                  final=False, metadata={"c": "3"})  # fmt: skip
        voided = ledger.void(idempotency_key=unique("v"), hold_id=held.hold_id,
                             metadata={"d": "4"})  # fmt: skip
        assert [{"a": "1"}, {"b": "2"}, {"c": "3"}, {"d": "4"}] == [
            moved.metadata, held.metadata, captured.metadata, voided.metadata,
        ]  # fmt: skip
        payee_history = {e.idempotency_key: e.metadata for e in ledger.history(payee).items}
        assert {"a": "1"} == payee_history[moved.idempotency_key]


class TestPartOfTheKey:
    @pytest.mark.parametrize("other", [{"round": "r-82", "provider_tx": "pp:551"}, {}, None])
    def test_reusing_a_key_with_other_metadata_is_a_conflict(
        self, ledger: Ledger, other: dict[str, str] | None
    ) -> None:
        """Other metadata (or none) under a used key: IdempotencyConflict naming metadata."""
        user_id = _funded(ledger)
        key = unique("k")
        ledger.transact(idempotency_key=key, user_id=user_id, amount=5, type="credit",
                        metadata=ROUND)  # fmt: skip
        with pytest.raises(IdempotencyConflict) as caught:
            ledger.transact(idempotency_key=key, user_id=user_id, amount=5, type="credit",
                            metadata=other)  # fmt: skip
        assert ("metadata",) == caught.value.fields

    def test_a_capture_key_reused_with_other_metadata_is_a_conflict(self, ledger: Ledger) -> None:
        """A capture replayed with other metadata is refused, naming metadata."""
        user_id = _funded(ledger)
        held = ledger.hold(idempotency_key=unique("h"), user_id=user_id, amount=5)
        key = unique("c")
        ledger.capture(idempotency_key=key, hold_id=held.hold_id, metadata={"x": "1"})
        with pytest.raises(IdempotencyConflict) as caught:
            ledger.capture(idempotency_key=key, hold_id=held.hold_id, metadata={"x": "2"})
        assert ("metadata",) == caught.value.fields

    def test_a_refusal_for_funds_stands_for_its_metadata_too(self, ledger: Ledger) -> None:
        """A debit, transfer and hold refused for funds with metadata replay as the same
        refusal (they were a conflict on metadata), and the key without it is a conflict."""
        payer, payee = _funded(ledger, "0"), _funded(ledger)
        keys = {name: unique(name) for name in ("debit", "transfer", "hold")}
        calls = {
            "debit": lambda **meta: ledger.transact(idempotency_key=keys["debit"],
                                                    user_id=payer, amount=5, type="debit", **meta),
            "transfer": lambda **meta: ledger.transfer(idempotency_key=keys["transfer"],
                                                       from_user_id=payer, to_user_id=payee,
                                                       amount=5, **meta),
            "hold": lambda **meta: ledger.hold(idempotency_key=keys["hold"], user_id=payer,
                                               amount=5, **meta),
        }  # fmt: skip
        outcomes = {}
        for name, call in calls.items():
            seen: list[object] = []
            for meta in ({"metadata": ROUND}, {"metadata": ROUND}, {}):
                with pytest.raises((InsufficientFunds, IdempotencyConflict)) as caught:
                    call(**meta)
                error = caught.value
                seen.append(error.fields if isinstance(error, IdempotencyConflict) else "funds")
            outcomes[name] = seen
        assert {name: ["funds", "funds", ("metadata",)] for name in calls} == outcomes


class TestBounds:
    @pytest.mark.parametrize(
        ("metadata", "rule"),
        [
            ({f"k{n}": "v" for n in range(17)}, "at most 16 entries, got 17"),
            ({"": "v"}, "key '' must be 1 to 64 of A-Z a-z 0-9 _ . : -"),
            ({"k" * 65: "v"}, f"key {'k' * 65!r} must be 1 to 64 of A-Z a-z 0-9 _ . : -"),
            ({"has space": "v"}, "key 'has space' must be 1 to 64 of A-Z a-z 0-9 _ . : -"),
            ({"n": 5}, "n: must be a str, not int"),
            ({"n": "x" * 257}, "n: at most 256 characters, got 257"),
            ({"n": "line\nbreak"}, "n: must not contain control characters (found U+000A)"),
            ({"n": "x\ud800"}, "n: must not contain lone surrogates (found U+D800)"),
            ({f"k{n}": "é" * 128 for n in range(9)}, "at most 2048 bytes in all, got 2322"),
            (["round", "r-81"], "must be a mapping of str to str, not list"),
        ],
    )
    def test_bad_metadata_is_refused_before_anything_is_sent(
        self, ledger: Ledger, count_requests: Any, metadata: object, rule: str
    ) -> None:
        """Each broken bound is a ValidationError on metadata; no request is sent."""
        counter = count_requests(ledger)
        with pytest.raises(ValidationError) as caught:
            ledger.transact(idempotency_key=unique("k"), user_id="anyone", amount=1,
                            type="credit", metadata=metadata)  # type: ignore[arg-type]  # fmt: skip
        assert ("metadata", rule, 0) == (caught.value.field, caught.value.rule, counter.total)

    def test_every_operation_refuses_bad_metadata_before_sending(
        self, ledger: Ledger, count_requests: Any
    ) -> None:
        """Every operation taking metadata checks it first: a lone surrogate (which no
        UTF-8 request can carry) is a ValidationError on metadata, with nothing sent."""
        payer, payee = _funded(ledger), _funded(ledger)
        held = ledger.hold(idempotency_key=unique("h"), user_id=payer, amount=5)
        credited = ledger.transact(idempotency_key=unique("t"), user_id=payee, amount=1,
                                   type="credit")  # fmt: skip
        bad = {"note": "x\ud800"}
        operations = {
            "transact": lambda: ledger.transact(idempotency_key=unique("k"), user_id=payer,
                                                amount=1, type="credit", metadata=bad),
            "transfer": lambda: ledger.transfer(idempotency_key=unique("k"), from_user_id=payer,
                                                to_user_id=payee, amount=1, metadata=bad),
            "hold": lambda: ledger.hold(idempotency_key=unique("k"), user_id=payer, amount=1,
                                        metadata=bad),
            "capture": lambda: ledger.capture(idempotency_key=unique("k"), hold_id=held.hold_id,
                                              metadata=bad),
            "void": lambda: ledger.void(idempotency_key=unique("k"), hold_id=held.hold_id,
                                        metadata=bad),
            "refund": lambda: ledger.refund(idempotency_key=unique("k"),
                                            of=credited.idempotency_key, metadata=bad),
            "post": lambda: ledger.post(idempotency_key=unique("k"), metadata=bad, legs=[
                Leg(payer, 1, "debit"), Leg(payee, 1, "credit")]),
        }  # fmt: skip
        refused = {}
        counter = count_requests(ledger)
        for name, operation in operations.items():
            with pytest.raises(ValidationError) as caught:
                operation()
            refused[name] = (caught.value.field, caught.value.rule)
        rule = ("metadata", "note: must not contain lone surrogates (found U+D800)")
        assert (dict.fromkeys(operations, rule), 0) == (refused, counter.total)


def test_the_cli_takes_meta_options(ledger: Ledger, capsys: pytest.CaptureFixture[str]) -> None:
    """transact --meta round=r-81 --meta provider_tx=pp:551 --json prints the metadata."""
    user_id = _funded(ledger)
    base = ["--endpoint", ledger.settings.endpoint_url or "", "--table-prefix",
            ledger.settings.table_prefix]  # fmt: skip
    code = main([*base, "transact", "--key", unique("k"), "--user", user_id, "--amount", "1",
                 "--type", "credit", "--meta", "round=r-81", "--meta", "provider_tx=pp:551",
                 "--json"])  # fmt: skip
    import json

    assert (0, ROUND) == (code, json.loads(capsys.readouterr().out)["metadata"])
    assert 1 == main([*base, "transact", "--key", unique("k"), "--user", user_id,
                      "--amount", "1", "--type", "credit", "--meta", "no-equals"])  # fmt: skip
    assert "error: --meta: 'no-equals' is not KEY=VALUE" in capsys.readouterr().err
