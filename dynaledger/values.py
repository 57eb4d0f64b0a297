"""Frozen value objects: what crosses the public API.

Services return these, never PynamoDB models, so callers hold plain Python
values (``Decimal``, ``str``, aware ``datetime``) that cannot touch the database.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

import attrs

from dynaledger.errors import ValidationError


class EntryType(str, enum.Enum):
    """The direction of a money movement; compares equal to its str value."""

    CREDIT = "credit"
    DEBIT = "debit"

    def __str__(self) -> str:
        return self.value


def _own_copy(metadata: Mapping[str, str]) -> dict[str, str]:
    """A result's own copy of a movement's metadata: editing it edits nothing else
    (not the record the ledger remembers for later captures and refunds)."""
    return dict(metadata)


@attrs.frozen
class Balance:
    """A user's balance as read.

    Attributes:
        user_id: The account.
        amount: The balance, exact.
        currency: ISO 4217 code of the account.
        is_opening: True when the account has never been written and shows its opening balance.
        held: Reserved by active, unexpired holds; ``amount + held`` is the total.
        credit_limit: How far below zero the account may go (0: not at all).
    """

    user_id: str
    amount: Decimal
    currency: str
    is_opening: bool = False
    held: Decimal = Decimal(0)
    credit_limit: Decimal = Decimal(0)


@attrs.frozen
class User:
    """A user account as created.

    Attributes:
        user_id: The account.
        currency: ISO 4217 code of the account.
        balance: The starting balance stored, or None for the ledger's opening balance.
        credit_limit: How far below zero the account may go (0: not at all).
    """

    user_id: str
    currency: str
    balance: Decimal | None
    credit_limit: Decimal = Decimal(0)


@attrs.frozen
class CreditLimitResult:
    """The outcome of one change of an account's credit limit.

    Attributes:
        idempotency_key: The key the change is known by, forever.
        user_id: The account.
        credit_limit: The limit now in force: the balance may go down to minus it.
        currency: The account's currency, the limit's unit.
        timestamp: When it was applied (aware, UTC); a replay returns the original time.
        replayed: True when an earlier request with this key had already applied it.
    """

    idempotency_key: str
    user_id: str
    credit_limit: Decimal
    currency: str
    timestamp: datetime
    replayed: bool


@attrs.frozen
class TransactResult:
    """The outcome of one credit or debit.

    Attributes:
        idempotency_key: The key the movement is known by, forever.
        user_id: The account moved.
        amount: The amount moved, positive.
        type: Credit or debit.
        currency: ISO 4217 code.
        timestamp: When it was applied (aware, UTC); a replay returns the original time.
        replayed: True when an earlier request with this key had already applied it.
        metadata: The caller's metadata, as stored with the movement.
    """

    idempotency_key: str
    user_id: str
    amount: Decimal
    type: EntryType
    currency: str
    timestamp: datetime
    replayed: bool
    metadata: dict[str, str] = attrs.field(factory=dict, converter=_own_copy)


@attrs.frozen
class TransferResult:
    """The outcome of one transfer between two accounts.

    Attributes:
        idempotency_key: The transfer's key.
        from_user_id: The debited account.
        to_user_id: The credited account.
        amount: The amount moved, positive.
        currency: ISO 4217 code of both accounts.
        timestamp: When it was applied (aware, UTC).
        replayed: True when an earlier request with this key had already applied it.
        metadata: The caller's metadata, as stored with the movement.
    """

    idempotency_key: str
    from_user_id: str
    to_user_id: str
    amount: Decimal
    currency: str
    timestamp: datetime
    replayed: bool
    metadata: dict[str, str] = attrs.field(factory=dict, converter=_own_copy)


@attrs.frozen
class HistoryEntry:
    """One applied movement on one account.

    Attributes:
        idempotency_key: The key of the credit, debit or transfer.
        user_id: The account this entry belongs to.
        amount: The amount, positive (0 for a posting's leg, or its refund's, on an
            account whose legs cancel out).
        type: Credit or debit, from this account's point of view.
        currency: ISO 4217 code.
        timestamp: When it was applied (aware, UTC).
        counterparty_id: The other account of a transfer leg, else None.
        kind: ``hold``, ``capture``, ``release``, ``void`` or ``expiry`` for holds'
            entries; ``limit`` for a change of credit limit (``amount`` is the new limit,
            not money moved); ``refund`` for refunds, ``posting`` for postings' legs;
            None for credits, debits and transfers.
        hold_id: The hold a holds' entry belongs to, else None.
        metadata: The caller's metadata, as stored with the movement.
        refund_of: The key of the movement a refund gives back, else None.
        posted_with: The other accounts of a posting (or of its refund), else ().
    """

    idempotency_key: str
    user_id: str
    amount: Decimal
    type: EntryType
    currency: str
    timestamp: datetime
    counterparty_id: str | None = None
    kind: str | None = None
    hold_id: str | None = None
    metadata: dict[str, str] = attrs.field(factory=dict, converter=_own_copy)
    refund_of: str | None = None
    posted_with: tuple[str, ...] = ()


@attrs.frozen
class RefundResult:
    """The outcome of a refund, or its replay.

    Attributes:
        idempotency_key: The refund's key.
        of: The key of the movement refunded.
        kind: The original's kind (``transact``, ``transfer``, ``capture``, ``posting``).
        amount: The amount given back (for a posting, its total).
        currency: The original's currency.
        timestamp: When it was applied (aware, UTC).
        replayed: True when an earlier call applied it.
        metadata: The caller's metadata, as stored with the refund.
    """

    idempotency_key: str
    of: str
    kind: str
    amount: Decimal
    currency: str
    timestamp: datetime
    replayed: bool
    metadata: dict[str, str] = attrs.field(factory=dict, converter=_own_copy)


_ENTRY_TYPES = {entry.value: entry for entry in EntryType}


def parse_type(value: object) -> EntryType:
    """Accept ``"credit"``, ``"debit"`` or an :class:`EntryType`."""
    if isinstance(value, EntryType):
        return value
    found = _ENTRY_TYPES.get(value) if isinstance(value, str) else None
    if found is not None:
        return found
    raise ValidationError("type", f"must be 'credit' or 'debit', not {value!r}")


@attrs.frozen
class Leg:
    """One account's part of a posting.

    Attributes:
        user_id: The account.
        amount: What it is credited or debited (a string, int or Decimal; checked by ``post``).
        type: Credit or debit (``"credit"``/``"debit"`` accepted).
    """

    user_id: str
    amount: object
    type: EntryType = attrs.field(converter=parse_type)


@attrs.frozen
class PostResult:
    """The outcome of a posting, or its replay.

    Attributes:
        idempotency_key: The posting's key.
        legs: One per account, legs on one account merged (net amount and type),
            in the order the accounts first appear.
        amount: The posting's total: its credits (equal to its debits).
        currency: The currency of every leg.
        timestamp: When it was applied (aware, UTC).
        replayed: True when an earlier call applied it.
        metadata: The caller's metadata, as stored with the posting.
    """

    idempotency_key: str
    legs: tuple[Leg, ...]
    amount: Decimal
    currency: str
    timestamp: datetime
    replayed: bool
    metadata: dict[str, str] = attrs.field(factory=dict, converter=_own_copy)


@attrs.frozen
class HoldResult:
    """The outcome of a hold: ``amount`` reserved from ``user_id``.

    Attributes:
        hold_id: The hold's id: its idempotency key.
        user_id: The account the money is reserved from.
        to_user_id: The account a capture credits (a pending transfer), or None (a debit).
        amount: The amount reserved.
        currency: ISO 4217 code.
        created_at: When it was made (aware, UTC).
        expires_at: When it expires, or None for never.
        replayed: True when an earlier request with this key had already made it.
        metadata: The caller's metadata, as stored with the movement.
    """

    hold_id: str
    user_id: str
    to_user_id: str | None
    amount: Decimal
    currency: str
    created_at: datetime
    expires_at: datetime | None
    replayed: bool
    metadata: dict[str, str] = attrs.field(factory=dict, converter=_own_copy)


@attrs.frozen
class CaptureResult:
    """The outcome of a capture.

    Attributes:
        idempotency_key: The capture's key.
        hold_id: The hold captured from.
        amount: Captured: debited from the holder (and credited to ``to_user_id``).
        released: Returned to the holder (what remained, on a final capture).
        remaining: Still reserved after this capture.
        currency: ISO 4217 code.
        timestamp: When it was applied (aware, UTC).
        replayed: True when an earlier request with this key had already applied it.
        metadata: The caller's metadata, as stored with the movement.
    """

    idempotency_key: str
    hold_id: str
    amount: Decimal
    released: Decimal
    remaining: Decimal
    currency: str
    timestamp: datetime
    replayed: bool
    metadata: dict[str, str] = attrs.field(factory=dict, converter=_own_copy)


@attrs.frozen
class VoidResult:
    """The outcome of a void: what remained of the hold, returned to its holder.

    Attributes:
        idempotency_key: The void's key.
        hold_id: The hold voided.
        user_id: The holder.
        released: The amount returned.
        currency: ISO 4217 code.
        timestamp: When it was applied (aware, UTC).
        replayed: True when an earlier request with this key had already applied it.
        metadata: The caller's metadata, as stored with the movement.
    """

    idempotency_key: str
    hold_id: str
    user_id: str
    released: Decimal
    currency: str
    timestamp: datetime
    replayed: bool
    metadata: dict[str, str] = attrs.field(factory=dict, converter=_own_copy)


@attrs.frozen
class Hold:
    """A hold as it stands at the ledger's now.

    Attributes:
        hold_id: Its id.
        user_id: The holder.
        to_user_id: The payee of a pending transfer, or None.
        amount: Reserved at first.
        currency: ISO 4217 code.
        status: ``active``, ``captured``, ``voided`` or ``expired`` (from its expiry instant).
        remaining: Still reserved (0 unless active).
        captured: Captured so far.
        released: Returned to the holder (by a final capture, a void or expiry).
        created_at: When it was made.
        expires_at: When it expires, or None.
    """

    hold_id: str
    user_id: str
    to_user_id: str | None
    amount: Decimal
    currency: str
    status: str
    remaining: Decimal
    captured: Decimal
    released: Decimal
    created_at: datetime
    expires_at: datetime | None


@attrs.frozen
class ExpiryReport:
    """What ``expire_holds`` released.

    Attributes:
        checked: Accounts with holds that were looked at.
        accounts: Accounts it released holds of.
        released: Holds it released.
        problems: Accounts (or their hold records) that could not be read right, each
            skipped; the others were still released.
    """

    checked: int
    accounts: int
    released: int
    problems: tuple[RecordProblem, ...] = ()


@attrs.frozen
class HistoryPage:
    """A page of history, newest first.

    Attributes:
        items: The entries.
        next_cursor: Pass to ``history(cursor=...)`` for the next page; None at the end.
    """

    items: tuple[HistoryEntry, ...]
    next_cursor: str | None


@attrs.frozen
class Mismatch:
    """An account whose stored balance disagrees with its history.

    Attributes:
        user_id: The account.
        expected: Opening balance plus applied credits minus applied debits.
        actual: The stored balance.
        field: ``balance``, or ``held`` (holds minus captures and releases against the
            stored ``held`` and its hold entries).
    """

    user_id: str
    expected: Decimal
    actual: Decimal
    field: str = "balance"


@attrs.frozen
class RecordProblem:
    """A stored item reconcile could not count, so its account was not judged.

    Attributes:
        user_id: The account the item belongs to.
        table: The table holding it.
        key: Its key (a user id or an idempotency key).
        problem: The rule it breaks.
    """

    user_id: str
    table: str
    key: str
    problem: str


@attrs.frozen
class ReconcileReport:
    """The result of checking balances against history.

    Attributes:
        checked: How many accounts were checked.
        mismatches: Every account that disagrees.
        problems: Every item that could not be read right; its account has no verdict.
    """

    checked: int
    mismatches: tuple[Mismatch, ...]
    problems: tuple[RecordProblem, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every checked account was read and agrees with its history."""
        return not self.mismatches and not self.problems


@attrs.frozen
class DeploymentSettings:
    """What every ledger on one set of tables must agree on.

    Attributes:
        opening_balance: What an account with no stored balance holds.
        default_currency: The currency of an account with none stored.
        assets: Assets beyond ISO 4217, with their decimals.
    """

    opening_balance: Decimal
    default_currency: str
    assets: dict[str, int]


@attrs.frozen
class SeedReport:
    """What a seed run wrote.

    Attributes:
        created: Users written.
        skipped: Users that existed already and were left untouched.
    """

    created: int
    skipped: int


@attrs.frozen
class TableSettings:
    """The protection of one table.

    Attributes:
        table: The table name.
        point_in_time_recovery: Continuous backups are on.
        deletion_protection: DeleteTable is refused.
    """

    table: str
    point_in_time_recovery: bool
    deletion_protection: bool


@attrs.frozen
class RevisionStatus:
    """One migration revision and whether it is applied.

    Attributes:
        revision: The revision id, such as ``"0001"``.
        description: What the revision does.
        applied_at: When it was applied, or None while pending.
        claimed_by: While a migrator is applying it (or died doing so): its
            ``host:pid``; None otherwise.
        claimed_at: When that migrator claimed it.
    """

    revision: str
    description: str
    applied_at: datetime | None
    claimed_by: str | None = None
    claimed_at: datetime | None = None

    @property
    def applied(self) -> bool:
        """True once the revision is recorded as applied."""
        return self.applied_at is not None


@attrs.frozen
class SchemaCheck:
    """Whether the tables match this version of the library, for deploy gates.

    Attributes:
        pending: Revisions not applied yet, in order.
        problems: Each missing or incompatible table or index, as a sentence.
    """

    pending: tuple[str, ...]
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when nothing is pending and every table is as the models expect."""
        return not self.pending and not self.problems


@attrs.frozen
class Readiness:
    """What :meth:`dynaledger.Ledger.ping` proved.

    Attributes:
        tables: The tables (and index) that answered, one request each.
    """

    tables: tuple[str, ...]
