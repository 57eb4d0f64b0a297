"""The ``SchemaMigrations`` table: which migration revisions are applied."""

from __future__ import annotations

from pynamodb.attributes import UnicodeAttribute
from pynamodb.models import Model

from dynaledger.models.attributes import ISODateTimeAttribute

STATE_APPLYING = "applying"
STATE_APPLIED = "applied"
STATE_RELEASED = "released"  # a migrator failed or was released; the next one applies it again


class SchemaMigration(Model):
    """One revision's record, written with a condition so only one migrator applies it."""

    class Meta:
        table_name = "SchemaMigrations"
        billing_mode = "PAY_PER_REQUEST"

    revision = UnicodeAttribute(hash_key=True)
    description = UnicodeAttribute(null=True)
    state = UnicodeAttribute()
    started_at = ISODateTimeAttribute(attr_name="startedAt")
    applied_at = ISODateTimeAttribute(null=True, attr_name="appliedAt")
    applied_by = UnicodeAttribute(null=True, attr_name="appliedBy")
    #: Unique per migrator run, so a claim whose reply was lost recognises itself on retry.
    claim_token = UnicodeAttribute(null=True, attr_name="claimToken")
