"""The ``Transactions`` table: one item per idempotency key, applied or rejected."""

from __future__ import annotations

from pynamodb.attributes import UnicodeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from dynaledger.models.attributes import DecimalAttribute, ISODateTimeAttribute

STATUS_APPLIED = "applied"
STATUS_REJECTED = "rejected"
KIND_TRANSACT = "transact"
KIND_TRANSFER = "transfer"


class UserTimestampIndex(GlobalSecondaryIndex["Transaction"]):  # type: ignore[no-untyped-call]
    """History by user, in time order.

    Sparse: only applied entries carry ``timestamp``, so rejected requests
    never show up in history.
    """

    class Meta:
        index_name = "userId-timestamp-index"
        projection = AllProjection()

    user_id = UnicodeAttribute(hash_key=True, attr_name="userId")
    timestamp = ISODateTimeAttribute(range_key=True)


class Transaction(Model):
    """The record of one money movement, or one leg of a transfer.

    Wire names match the TypeScript service's ``Transactions`` table; the
    fields after ``timestamp`` are dynaledger's own.
    """

    class Meta:
        table_name = "Transactions"
        billing_mode = "PAY_PER_REQUEST"

    idempotency_key = UnicodeAttribute(hash_key=True, attr_name="idempotencyKey")
    user_id = UnicodeAttribute(attr_name="userId")
    amount = DecimalAttribute()
    type = UnicodeAttribute()
    timestamp = ISODateTimeAttribute(null=True)
    currency = UnicodeAttribute(null=True)
    status = UnicodeAttribute(null=True)
    kind = UnicodeAttribute(null=True)
    fingerprint = UnicodeAttribute(null=True)
    request_id = UnicodeAttribute(null=True, attr_name="requestId")
    counterparty_id = UnicodeAttribute(null=True, attr_name="counterpartyId")
    transfer_id = UnicodeAttribute(null=True, attr_name="transferId")
    rejected_at = ISODateTimeAttribute(null=True, attr_name="rejectedAt")
    rejected_balance = DecimalAttribute(null=True, attr_name="rejectedBalance")

    user_index = UserTimestampIndex()
