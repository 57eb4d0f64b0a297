"""The exceptions dynaledger raises; every one derives from :class:`LedgerError`.

Services translate PynamoDB and botocore failures into these, so callers never
need to import either library to handle a ledger failure. The lower-level
exception, when there is one, is both chained (``__cause__``) and kept as
``cause``.

They come in five groups, so a service needs a handful of ``except`` clauses:

* :class:`RequestError`: the request is wrong (validation, currency, reused key);
* :class:`NotFound`: the user it names does not exist;
* :class:`Refused`: the rules refuse it (insufficient funds, a taken user id);
* :class:`TransientError`: try again later, with the same idempotency key
  (contention, DynamoDB unavailable, the call's deadline passed);
* :class:`ConfigurationError`: the deployment is not ready (missing tables,
  failed migrations, a closed ledger, unusable client settings).

Every class has a stable machine-readable ``code`` (snake case, documented in
the README), a ``retryable`` flag and the ``http_status`` a web service would
usually answer with.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import ClassVar


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class LedgerError(Exception):
    """Base class of every error dynaledger raises.

    Attributes:
        msg: The human-readable message.
        cause: The lower-level exception behind this one, if any (also ``__cause__``).
        code: A stable machine-readable name, such as ``"insufficient_funds"``.
        retryable: True when the same call may succeed later (with the same key).
        http_status: The HTTP status a web service would usually map this error to.
    """

    msg: str = "ledger error"
    code: ClassVar[str] = "ledger_error"
    retryable: ClassVar[bool] = False
    http_status: ClassVar[int] = 500

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        # A class that names no code of its own is known by its class name.
        if "code" not in cls.__dict__:
            cls.code = _snake(cls.__name__)

    def __init__(self, msg: str | None = None, *, cause: BaseException | None = None) -> None:
        self.msg = msg if msg is not None else self.msg
        self.cause = cause
        super().__init__(self.msg)
        if cause is not None:
            self.__cause__ = cause


# The groups -------------------------------------------------------------------


class RequestError(LedgerError):
    """The request is wrong; sending it again unchanged fails again."""

    code = "request_error"
    http_status = 400


class NotFound(LedgerError):
    """Something the request names does not exist."""

    code = "not_found"
    http_status = 404


class Refused(LedgerError):
    """The request is valid, but the ledger's rules refuse it."""

    code = "refused"
    http_status = 409


class TransientError(LedgerError):
    """The call could not finish now; the same call (same idempotency key) may succeed later.

    Attributes:
        operation: The ledger operation, such as ``"transact"``, or None.
        attempts: Requests tried before giving up.
        idempotency_key: The key of the write, or None for a read.
        deadline_exceeded: True when the call's deadline ended it, not the retry budget.
    """

    code = "transient_error"
    retryable = True
    http_status = 503

    def __init__(
        self,
        msg: str | None = None,
        *,
        cause: BaseException | None = None,
        operation: str | None = None,
        attempts: int = 0,
        idempotency_key: str | None = None,
        deadline_exceeded: bool = False,
    ) -> None:
        self.operation = operation
        self.attempts = attempts
        self.idempotency_key = idempotency_key
        self.deadline_exceeded = deadline_exceeded
        super().__init__(msg, cause=cause)


class ConfigurationError(LedgerError):
    """The deployment is not ready or is misconfigured; an operator must act.

    Missing tables, failed migrations, settings that differ from the
    deployment's, unreadable records, a closed ledger; and DynamoDB that cannot
    be used as configured (no credentials, rejected credentials, no access),
    raised at the first attempt since retrying does not help.
    """

    code = "configuration_error"
    http_status = 503


# The request is wrong ----------------------------------------------------------


class ValidationError(RequestError, ValueError):
    """An argument broke a rule; nothing was sent or written.

    Attributes:
        field: The name of the offending argument (or environment variable).
        rule: The rule it broke.
    """

    code = "validation_error"
    http_status = 422

    def __init__(self, field: str, rule: str) -> None:
        self.field = field
        self.rule = rule
        super().__init__(f"{field}: {rule}")


class IdempotencyConflict(RequestError):
    """The idempotency key was used before for a different request; nothing was written.

    Attributes:
        idempotency_key: The reused key.
        fields: The request fields that differ from the stored request.
    """

    code = "idempotency_conflict"
    http_status = 409

    def __init__(self, idempotency_key: str, fields: Sequence[str]) -> None:
        self.idempotency_key = idempotency_key
        self.fields = tuple(fields)
        super().__init__(
            f"idempotency key {idempotency_key!r} was used for a different request "
            f"(differs in: {', '.join(self.fields)})"
        )


class CurrencyMismatch(RequestError):
    """The currency asked for is not the account's currency (or the two accounts differ).

    Attributes:
        user_id: The account.
        expected: The currency the request asked for.
        actual: The currency the account holds.
    """

    code = "currency_mismatch"
    http_status = 422

    def __init__(self, user_id: str, expected: str, actual: str) -> None:
        self.user_id = user_id
        self.expected = expected
        self.actual = actual
        super().__init__(f"user {user_id!r} holds {actual}, not {expected}")


# Not found -----------------------------------------------------------------------


class UserNotFound(NotFound):
    """No user has this id.

    Attributes:
        user_id: The id asked for.
    """

    code = "user_not_found"

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        super().__init__(f"user {user_id!r} does not exist")


# Refused by the rules --------------------------------------------------------------


class UserAlreadyExists(Refused):
    """A user with this id exists already; it was left untouched.

    Attributes:
        user_id: The id asked for.
    """

    code = "user_already_exists"

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        super().__init__(f"user {user_id!r} already exists")


class InsufficientFunds(Refused):
    """A debit, transfer or hold would take the balance below minus the account's credit
    limit (zero without one); it was refused and recorded.

    Attributes:
        user_id: The account that would have been overdrawn.
        balance: Its balance when the request was refused.
        amount: The amount asked for.
        currency: The account's currency.
        credit_limit: The credit limit in force then: the balance may go down to minus it.
    """

    code = "insufficient_funds"
    http_status = 422

    def __init__(
        self,
        user_id: str,
        balance: Decimal,
        amount: Decimal,
        currency: str,
        credit_limit: Decimal = Decimal(0),
    ) -> None:
        self.user_id = user_id
        self.balance = balance
        self.amount = amount
        self.currency = currency
        self.credit_limit = credit_limit
        limit = f" and a credit limit of {credit_limit:f} {currency}" if credit_limit else ""
        super().__init__(
            f"insufficient funds: user {user_id!r} has {balance:f} {currency}{limit}, "
            f"{amount:f} {currency} requested"
        )


# Try again later --------------------------------------------------------------------


class ConcurrencyError(TransientError):
    """Conflicts or throttling outlasted the retry budget or the deadline; nothing was applied
    by the attempts that conflicted, and retrying a write with the same key is safe."""

    code = "concurrency_error"
    msg = "the request kept conflicting or being throttled; try again later"


class ServiceUnavailable(TransientError):
    """DynamoDB could not be reached, kept failing, or did not answer within the deadline.

    A write may or may not have been applied; retrying it with the same key is
    safe and tells which.
    """

    code = "service_unavailable"
    msg = "DynamoDB is unavailable; try again later"


# The deployment ------------------------------------------------------------------------


class TableNotFound(ConfigurationError):
    """A ledger table does not exist: run the migrations first.

    Attributes:
        table_name: The missing table's full name, prefix included.
    """

    code = "table_not_found"

    def __init__(self, table_name: str, *, cause: BaseException | None = None) -> None:
        self.table_name = table_name
        super().__init__(
            f"table {table_name!r} does not exist; run `dynaledger migrate`", cause=cause
        )


class MigrationError(ConfigurationError):
    """A migration could not be applied."""

    code = "migration_error"
    http_status = 500


class IncompatibleTable(MigrationError):
    """A table exists with a key schema other than the model's.

    Attributes:
        table_name: The table.
        expected: The key schema the model expects.
        actual: The key schema the table has.
    """

    code = "incompatible_table"

    def __init__(self, table_name: str, expected: str, actual: str) -> None:
        self.table_name = table_name
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"table {table_name!r} has key schema {actual}, but the model expects {expected}"
        )


class UnreadableRecord(ConfigurationError):
    """A stored item breaks a rule the ledger relies on; it was not used.

    Other clients (a service sharing the tables, the AWS CLI, a hand edit) can
    write anything. An item the ledger cannot read right is refused with this
    error, naming it, rather than read wrong; an operator must look at it.

    Attributes:
        table_name: The table holding the item.
        key: The item's key (a user id or an idempotency key).
        problem: The rule it breaks.
    """

    code = "unreadable_record"
    http_status = 500

    def __init__(self, table_name: str, key: str, problem: str) -> None:
        self.table_name = table_name
        self.key = key
        self.problem = problem
        super().__init__(f"cannot read item {key!r} of table {table_name!r}: {problem}")


class SettingsMismatch(ConfigurationError):
    """This ledger's settings are not the deployment's stored ones; it writes nothing.

    Attributes:
        differences: One line per setting that differs, naming both values.
    """

    code = "settings_mismatch"

    def __init__(self, differences: Sequence[str], hint: str) -> None:
        self.differences = tuple(differences)
        super().__init__(
            "this ledger's settings differ from the deployment's: "
            + "; ".join(self.differences)
            + f" ({hint})"
        )


class IncompatibleIndex(IncompatibleTable):
    """A table's index exists with another key schema or projection than the model's.

    Attributes:
        index_name: The index.
        differences: What differs, each as ``"<what> <actual>, the model expects <expected>"``.
    """

    code = "incompatible_index"

    def __init__(
        self,
        table_name: str,
        index_name: str,
        expected: str,
        actual: str,
        differences: Sequence[str],
    ) -> None:
        self.table_name = table_name
        self.index_name = index_name
        self.expected = expected
        self.actual = actual
        self.differences = tuple(differences)
        MigrationError.__init__(
            self, f"table {table_name!r} has index {index_name!r} with {'; '.join(differences)}"
        )


# Holds -----------------------------------------------------------------------------
# Holds' errors (issue 12), in the groups above: none is retryable, each is final for
# its request.


class HoldNotFound(NotFound):
    """No hold has this id."""

    def __init__(self, hold_id: str) -> None:
        self.hold_id = hold_id
        super().__init__(f"hold {hold_id!r} does not exist")


class HoldExpired(Refused):
    """The hold expired: its remainder went back to the holder; nothing was captured."""

    def __init__(self, hold_id: str, expires_at: datetime) -> None:
        self.hold_id = hold_id
        self.expires_at = expires_at
        super().__init__(f"hold {hold_id!r} expired at {expires_at.isoformat()}")


class HoldClosed(Refused):
    """The hold was captured with ``final=True`` (or in full) or voided; nothing moved.

    Attributes:
        status: ``captured`` or ``voided``.
    """

    def __init__(self, hold_id: str, status: str) -> None:
        self.hold_id = hold_id
        self.status = status
        super().__init__(f"hold {hold_id!r} is closed: already {status}")


class HoldExceeded(Refused):
    """A capture asked for more than the hold has remaining; nothing moved."""

    http_status = 422

    def __init__(self, hold_id: str, remaining: Decimal, amount: Decimal, currency: str) -> None:
        self.hold_id = hold_id
        self.remaining = remaining
        self.amount = amount
        self.currency = currency
        super().__init__(
            f"hold {hold_id!r} has {remaining:f} {currency} remaining, "
            f"{amount:f} {currency} requested"
        )


class TooManyHolds(Refused):
    """The account has as many active holds as one account item may carry; nothing was held.

    Attributes:
        user_id: The account.
        limit: The most holds an account carries (1,000).
        item_full: True when refused before that: the account's item has no room for
            another hold's entry within DynamoDB's 400 KB (long non-ASCII hold ids).
    """

    def __init__(self, user_id: str, limit: int, *, item_full: bool = False) -> None:
        self.user_id = user_id
        self.limit = limit
        self.item_full = item_full
        if item_full:
            why = (
                f"user {user_id!r} has no room for another hold: its account item would pass "
                "DynamoDB's 400 KB (each hold's entry takes its id's UTF-8 bytes)"
            )
        else:
            why = f"user {user_id!r} has {limit} holds, the most one account may carry"
        super().__init__(f"{why}; capture, void or expire some first")


# Refunds and postings -----------------------------------------------------------------
# Refunds' errors (issue 14), in the groups above: none is retryable, each is final for
# its request.


class MovementNotFound(NotFound):
    """No movement has this idempotency key (a refund's ``of``).

    Attributes:
        key: The key asked for.
    """

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"no movement has idempotency key {key!r}")


class NotRefundable(Refused):
    """The movement named cannot be refunded (refused, itself a refund, a hold, ...).

    Attributes:
        key: The movement's key.
        reason: Why, such as ``"it was refused"`` or ``"it is a refund"``.
    """

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"movement {key!r} cannot be refunded: {reason}")


class RefundExceeded(Refused):
    """A refund asked for more than is left of its original; nothing moved.

    Attributes:
        key: The original's key.
        left: What is left to refund.
        amount: The amount asked for.
        currency: The original's currency.
    """

    http_status = 422

    def __init__(self, key: str, left: Decimal, amount: Decimal, currency: str) -> None:
        self.key = key
        self.left = left
        self.amount = amount
        self.currency = currency
        asked = "" if not amount else f", {amount:f} {currency} requested"
        if not left:
            super().__init__(f"movement {key!r} has nothing left to refund{asked}")
        else:
            super().__init__(f"movement {key!r} has {left:f} {currency} left to refund{asked}")


__all__ = [
    "ConcurrencyError",
    "ConfigurationError",
    "CurrencyMismatch",
    "HoldClosed",
    "HoldExceeded",
    "HoldExpired",
    "HoldNotFound",
    "IdempotencyConflict",
    "IncompatibleIndex",
    "IncompatibleTable",
    "InsufficientFunds",
    "LedgerError",
    "MigrationError",
    "MovementNotFound",
    "NotFound",
    "NotRefundable",
    "RefundExceeded",
    "Refused",
    "RequestError",
    "ServiceUnavailable",
    "SettingsMismatch",
    "TableNotFound",
    "TooManyHolds",
    "TransientError",
    "UnreadableRecord",
    "UserAlreadyExists",
    "UserNotFound",
    "ValidationError",
]
