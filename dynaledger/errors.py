"""The exceptions dynaledger raises; every one derives from :class:`LedgerError`.

Services translate PynamoDB and botocore failures into these, so callers never
need to import either library to handle a ledger failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal


class LedgerError(Exception):
    """Base class of every error dynaledger raises.

    Attributes:
        msg: The human-readable message.
        cause: The lower-level exception behind this one, if any.
    """

    msg: str = "ledger error"

    def __init__(self, msg: str | None = None, *, cause: BaseException | None = None) -> None:
        self.msg = msg if msg is not None else self.msg
        self.cause = cause
        super().__init__(self.msg)


class ValidationError(LedgerError, ValueError):
    """An argument broke a rule; nothing was sent or written.

    Attributes:
        field: The name of the offending argument.
    """

    def __init__(self, field: str, rule: str) -> None:
        self.field = field
        self.rule = rule
        super().__init__(f"{field}: {rule}")


class UserNotFound(LedgerError):
    """No user has this id."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        super().__init__(f"user {user_id!r} does not exist")


class UserAlreadyExists(LedgerError):
    """A user with this id exists already."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        super().__init__(f"user {user_id!r} already exists")


class InsufficientFunds(LedgerError):
    """A debit or transfer would take the balance below zero; it was refused and recorded.

    Attributes:
        user_id: The account that would have been overdrawn.
        balance: Its balance when the request was refused.
        amount: The amount asked for.
    """

    def __init__(self, user_id: str, balance: Decimal, amount: Decimal, currency: str) -> None:
        self.user_id = user_id
        self.balance = balance
        self.amount = amount
        self.currency = currency
        super().__init__(
            f"insufficient funds: user {user_id!r} has {balance:f} {currency}, "
            f"{amount:f} {currency} requested"
        )


class IdempotencyConflict(LedgerError):
    """The idempotency key was used before for a different request; nothing was written.

    Attributes:
        idempotency_key: The reused key.
        fields: The request fields that differ from the stored request.
    """

    def __init__(self, idempotency_key: str, fields: Sequence[str]) -> None:
        self.idempotency_key = idempotency_key
        self.fields = tuple(fields)
        super().__init__(
            f"idempotency key {idempotency_key!r} was used for a different request "
            f"(differs in: {', '.join(self.fields)})"
        )


class CurrencyMismatch(LedgerError):
    """The currency asked for is not the account's currency (or the two accounts differ)."""

    def __init__(self, user_id: str, expected: str, actual: str) -> None:
        self.user_id = user_id
        self.expected = expected
        self.actual = actual
        super().__init__(f"user {user_id!r} holds {actual}, not {expected}")


class ConcurrencyError(LedgerError):
    """Conflicts or throttling outlasted the retry budget; retrying with the same key is safe."""

    msg = "the request kept conflicting or being throttled; retry with the same idempotency key"


class ServiceUnavailable(LedgerError):
    """DynamoDB could not be reached or kept failing; retrying with the same key is safe."""

    msg = "DynamoDB is unavailable; retry with the same idempotency key"


class TableNotFound(LedgerError):
    """A ledger table does not exist: run the migrations first."""

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name
        super().__init__(f"table {table_name!r} does not exist; run `dynaledger migrate`")


class MigrationError(LedgerError):
    """A migration could not be applied."""


class IncompatibleTable(MigrationError):
    """A table exists with a key schema other than the model's."""

    def __init__(self, table_name: str, expected: str, actual: str) -> None:
        self.table_name = table_name
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"table {table_name!r} has key schema {actual}, but the model expects {expected}"
        )


class UnreadableRecord(LedgerError):
    """A stored item breaks a rule the ledger relies on; it was not used.

    Other clients (a service sharing the tables, the AWS CLI, a hand edit) can
    write anything. An item the ledger cannot read right is refused with this
    error, naming it, rather than read wrong.

    Attributes:
        table_name: The table holding the item.
        key: The item's key (a user id or an idempotency key).
        problem: The rule it breaks.
    """

    def __init__(self, table_name: str, key: str, problem: str) -> None:
        self.table_name = table_name
        self.key = key
        self.problem = problem
        super().__init__(f"cannot read item {key!r} of table {table_name!r}: {problem}")


class SettingsMismatch(LedgerError):
    """This ledger's settings are not the deployment's stored ones; it writes nothing.

    Attributes:
        differences: One line per setting that differs, naming both values.
    """

    def __init__(self, differences: Sequence[str], hint: str) -> None:
        self.differences = tuple(differences)
        super().__init__(
            "this ledger's settings differ from the deployment's: "
            + "; ".join(self.differences)
            + f" ({hint})"
        )


class ConfigurationError(LedgerError):
    """DynamoDB cannot be used as configured: no credentials, rejected credentials, or no access.

    Retrying does not help, so it is raised at the first attempt; the message names the cause.
    """


class IncompatibleIndex(IncompatibleTable):
    """A table's index exists with another key schema or projection than the model's.

    Attributes:
        index_name: The index.
        differences: What differs, each as ``"<what> <actual>, the model expects <expected>"``.
    """

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


__all__ = [
    "ConcurrencyError",
    "ConfigurationError",
    "CurrencyMismatch",
    "IdempotencyConflict",
    "IncompatibleIndex",
    "IncompatibleTable",
    "InsufficientFunds",
    "LedgerError",
    "MigrationError",
    "ServiceUnavailable",
    "SettingsMismatch",
    "TableNotFound",
    "UnreadableRecord",
    "UserAlreadyExists",
    "UserNotFound",
    "ValidationError",
]
