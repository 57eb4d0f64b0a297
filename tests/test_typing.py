"""The public signatures say what they accept, so mypy catches a misspelt type."""

from __future__ import annotations

from pathlib import Path

from mypy import api

SNIPPET = """
from decimal import Decimal
from dynaledger import EntryType, Ledger

def use(ledger: Ledger) -> None:
    ledger.transact(idempotency_key="k", user_id="u", amount=Decimal("1"), type="credit")
    ledger.transact(idempotency_key="k", user_id="u", amount="1.50", type=EntryType.DEBIT)
    ledger.transact(idempotency_key="k", user_id="u", amount=2, type="debit")
    ledger.transact(idempotency_key="k", user_id="u", amount=0.5, type="debit")
    ledger.transfer(idempotency_key="k", from_user_id="u", to_user_id="v", amount="1e3")
    ledger.transact(idempotency_key="k", user_id="u", amount="1", type="dbit")
    ledger.transact(idempotency_key="k", user_id="u", amount=[1], type="credit")
"""


def test_mypy_accepts_the_documented_inputs_and_refuses_others(tmp_path: Path) -> None:
    """Decimal, int, float and str amounts and both type spellings pass; "dbit" and a list fail.

    mypy names the class that defines ``transact``: ``Ledger``'s movements (``_facade``).
    """
    source = tmp_path / "use_ledger.py"
    source.write_text(SNIPPET, encoding="utf-8")
    out, _, code = api.run(
        ["--strict", "--no-incremental", "--follow-imports=silent", "--no-error-summary",
         "--cache-dir", str(tmp_path / "cache"), str(source)]
    )  # fmt: skip
    lines = [line.split(": error: ")[1] for line in out.splitlines() if ": error: " in line]
    refused_type = (
        """Argument "type" to "transact" of "MovementOperations" has incompatible type """
        """"Literal['dbit']"; expected "Literal['credit', 'debit'] | EntryType"  [arg-type]"""
    )
    refused_amount = (
        'Argument "amount" to "transact" of "MovementOperations" has incompatible type '
        '"list[int]"; expected "Decimal | int | float | str"  [arg-type]'
    )
    assert (1, [refused_type, refused_amount]) == (code, lines)
