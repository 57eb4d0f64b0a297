"""The deployment's settings: one item in the migrations table.

The opening balance, the default currency and the declared assets are
properties of a deployment, not of one process: every ledger on the same
tables must agree on them, or balances would read differently from process to
process. ``migrate`` records them here; ``dynaledger settings --apply`` changes them.
"""

from __future__ import annotations

from pynamodb.attributes import UnicodeAttribute
from pynamodb.models import Model

from dynaledger.models.attributes import DecimalAttribute, ISODateTimeAttribute

#: The item's key in the migrations table, beside the revision records.
SETTINGS_KEY = "@settings"


class DeploymentSettings(Model):
    """The settings every ledger on these tables must share."""

    class Meta:
        table_name = "SchemaMigrations"
        billing_mode = "PAY_PER_REQUEST"

    key = UnicodeAttribute(hash_key=True, attr_name="revision")
    opening_balance = DecimalAttribute(attr_name="openingBalance")
    default_currency = UnicodeAttribute(attr_name="defaultCurrency")
    #: ``BTC:8,ETH:18``, the form of ``DYNALEDGER_ASSETS``; empty for none.
    assets = UnicodeAttribute(null=True)
    updated_at = ISODateTimeAttribute(attr_name="updatedAt")
