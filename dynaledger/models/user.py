"""The ``Users`` table: one item per account."""

from __future__ import annotations

from pynamodb.attributes import UnicodeAttribute
from pynamodb.models import Model

from dynaledger.models.attributes import DecimalAttribute, ISODateTimeAttribute

#: The attribute of an account item holding one hold: this prefix, then the hold's id.
HOLD_PREFIX = "hold:"


class User(Model):
    """An account. Wire names match the TypeScript service's ``Users`` table.

    An account may have no ``balance`` (it then holds the ledger's opening
    balance) and no ``currency`` (it then holds the ledger's default currency).
    """

    class Meta:
        table_name = "Users"
        billing_mode = "PAY_PER_REQUEST"

    user_id = UnicodeAttribute(hash_key=True, attr_name="userId")
    balance = DecimalAttribute(null=True)
    currency = UnicodeAttribute(null=True)
    opening_balance = DecimalAttribute(null=True, attr_name="openingBalance")
    created_at = ISODateTimeAttribute(null=True, attr_name="createdAt")
    updated_at = ISODateTimeAttribute(null=True, attr_name="updatedAt")
    # Holds (dynaledger/services/holds.py): the sum of the remaining amounts of the
    # account's holds and their number. Each hold is one more attribute, named
    # ``hold:`` + its id, a map {remaining: N, expiresAt: S (absent: never)}.
    held = DecimalAttribute(null=True)
    hold_count = DecimalAttribute(null=True, attr_name="holdCount")
    # Credit limits (dynaledger/services/limits.py): the account may go down to
    # ``-creditLimit``. On an account with a ``creditLimit``, ``available`` is
    # ``balance + creditLimit``, kept by every update that changes ``balance`` so
    # that the floor stays one comparison; without one (limit 0) it is not read.
    credit_limit = DecimalAttribute(null=True, attr_name="creditLimit")
    available = DecimalAttribute(null=True)
