"""The call scope every ledger method opens: nesting, errors and single entry."""

from __future__ import annotations

import pytest

from dynaledger import _calls


def test_a_nested_scope_is_the_enclosing_call_and_leaves_it_in_place() -> None:
    """Inside a call, a scope keeps the outer call's name, key and deadline."""
    with _calls.scope("transact", idempotency_key="k", write=True, seconds=30) as outer:
        with _calls.scope("get_user_balance", seconds=1) as inner:
            assert inner is outer
        assert outer is _calls.current()
    assert (None, "transact", "k", True, 30) == (
        _calls.current(), outer.operation, outer.idempotency_key, outer.write, outer.budget,
    )  # fmt: skip


def test_an_error_in_the_block_propagates_and_ends_the_call() -> None:
    """The exception reaches the caller unchanged and no call is left current."""
    with pytest.raises(KeyError, match="boom"), _calls.scope("transact"):
        raise KeyError("boom")
    assert _calls.current() is None


def test_a_scope_is_entered_once() -> None:
    """Entering one scope object twice is a mistake, as with a generator's context manager."""
    scope = _calls.scope("transact")
    with scope:
        pass
    with pytest.raises(RuntimeError, match="entered once"), scope:
        pass
    assert _calls.current() is None


def test_a_scope_made_before_an_outer_call_and_entered_inside_it_joins_it() -> None:
    """What counts is the call in progress when the block starts, not when the scope was made."""
    later = _calls.scope("inner", seconds=1)
    with _calls.scope("outer") as outer, later as joined:
        assert joined is outer
