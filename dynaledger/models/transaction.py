"""The ``Transactions`` table: one item per idempotency key, applied or rejected."""

from __future__ import annotations

from pynamodb.attributes import UnicodeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from dynaledger.models.attributes import (
    DecimalAttribute,
    ISODateTimeAttribute,
    StringMapAttribute,
)

STATUS_APPLIED = "applied"
STATUS_REJECTED = "rejected"
KIND_TRANSACT = "transact"
KIND_TRANSFER = "transfer"
KIND_HOLD = "hold"
KIND_CAPTURE = "capture"
KIND_RELEASE = "release"
KIND_VOID = "void"
KIND_EXPIRY = "expiry"
#: A change of an account's credit limit: ``amount`` is the new limit (0 allowed), not money.
KIND_LIMIT = "limit"
KIND_REFUND = "refund"
KIND_POSTING = "posting"
#: Every kind dynaledger writes; records of other kinds are not read.
KINDS = frozenset(
    {
        KIND_TRANSACT, KIND_TRANSFER, KIND_HOLD, KIND_CAPTURE, KIND_RELEASE, KIND_VOID,
        KIND_EXPIRY, KIND_LIMIT, KIND_REFUND, KIND_POSTING,
    }
)  # fmt: skip
#: The state of a hold record (``holdStatus``); ``expired`` is also computed at read time.
HOLD_ACTIVE = "active"
HOLD_CAPTURED = "captured"
HOLD_VOIDED = "voided"
HOLD_EXPIRED = "expired"


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
    rejected_limit = DecimalAttribute(null=True, attr_name="rejectedLimit")
    # Holds: the hold record's state, and the hold each capture, release, void or expiry
    # belongs to. See dynaledger/services/holds.py.
    hold_id = UnicodeAttribute(null=True, attr_name="holdId")
    hold_status = UnicodeAttribute(null=True, attr_name="holdStatus")
    expires_at = ISODateTimeAttribute(null=True, attr_name="expiresAt")
    timeout = UnicodeAttribute(null=True)
    remaining = DecimalAttribute(null=True)
    captured = DecimalAttribute(null=True)
    released = DecimalAttribute(null=True)
    requested = UnicodeAttribute(null=True)
    final = UnicodeAttribute(null=True)
    #: The caller's short strings (a round id, a provider's transaction id).
    metadata = StringMapAttribute(null=True)
    # Refunds: an original's running total refunded, and each refund's original.
    # Postings: every account's net leg, ``user:amount:type`` joined by newlines.
    # See dynaledger/services/refunds.py and postings.py.
    refunded = DecimalAttribute(null=True)
    refund_of = UnicodeAttribute(null=True, attr_name="refundOf")
    legs = UnicodeAttribute(null=True)

    user_index = UserTimestampIndex()
