"""Table layout: the names a deployment's tables and idempotency key go by.

The defaults are dynaledger's own (``Users``, ``Transactions``,
``idempotencyKey``). A deployment sharing tables with an existing service sets
that service's names instead, such as ``UserTable``, ``TransactionTable`` and
``idempotentKey``; every other attribute keeps its wire name.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import attrs

from dynaledger.errors import ValidationError

#: DynamoDB's rule for table names (the prefix adds to the length).
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,255}")
_TABLE_CHARACTERS = re.compile(r"[A-Za-z0-9_.-]+")
#: DynamoDB's bounds on a whole table name, prefix included.
MIN_TABLE_NAME, MAX_TABLE_NAME = 3, 255
#: Attributes of the Transactions table the key attribute must not be named after.
_RECORD_ATTRIBUTES = frozenset(
    {
        "userId", "amount", "type", "timestamp", "currency", "status", "kind", "fingerprint",
        "requestId", "counterpartyId", "transferId", "rejectedAt", "rejectedBalance",
        "holdId", "holdStatus", "expiresAt", "timeout", "remaining", "captured", "released",
        "requested", "final",
    }
)  # fmt: skip


def _table_name(field: str) -> Callable[[object, object, object], None]:
    def check(instance: object, attribute: object, value: object) -> None:
        if not isinstance(value, str) or not _TABLE_NAME.fullmatch(value):
            raise ValidationError(
                field, f"must be 1 to 255 letters, digits, '_', '-' or '.', not {value!r}"
            )

    return check


def _key_attribute(instance: object, attribute: object, value: object) -> None:
    if not isinstance(value, str) or not 1 <= len(value) <= 255:
        raise ValidationError(
            "idempotency_key_attribute", f"must be a name of 1 to 255 characters, not {value!r}"
        )
    if value in _RECORD_ATTRIBUTES:
        raise ValidationError(
            "idempotency_key_attribute", f"{value!r} is another attribute of the records"
        )


@attrs.frozen
class TableLayout:
    """The names of a deployment's tables (before the prefix) and of the records' key.

    Attributes:
        users_table: The accounts table.
        transactions_table: The movement records table.
        migrations_table: Where applied migrations are recorded.
        idempotency_key_attribute: The records' key attribute (``idempotentKey`` in
            several TypeScript services).
    """

    users_table: str = attrs.field(default="Users", validator=_table_name("users_table"))
    transactions_table: str = attrs.field(
        default="Transactions", validator=_table_name("transactions_table")
    )
    migrations_table: str = attrs.field(
        default="SchemaMigrations", validator=_table_name("migrations_table")
    )
    idempotency_key_attribute: str = attrs.field(default="idempotencyKey", validator=_key_attribute)

    def __attrs_post_init__(self) -> None:
        names = [self.users_table, self.transactions_table, self.migrations_table]
        if len(set(names)) != len(names):
            raise ValidationError("layout", f"the three tables need three names, not {names}")

    def check_prefix(self, prefix: str) -> None:
        """Check that ``prefix`` makes DynamoDB table names of these: 3 to 255 characters.

        Raises:
            ValidationError: On ``table_prefix``, or on the table a name is too short or
                too long for.
        """
        if not isinstance(prefix, str) or (prefix and not _TABLE_CHARACTERS.fullmatch(prefix)):
            raise ValidationError(
                "table_prefix", f"must be letters, digits, '_', '-' or '.', not {prefix!r}"
            )
        for field in ("users_table", "transactions_table", "migrations_table"):
            name = prefix + getattr(self, field)
            if not MIN_TABLE_NAME <= len(name) <= MAX_TABLE_NAME:
                # Past the bound with a table's default name: the prefix's fault.
                default = getattr(attrs.fields(TableLayout), field).default
                too_long = len(name) > MAX_TABLE_NAME and getattr(self, field) == default
                blamed = "table_prefix" if too_long else field
                raise ValidationError(
                    blamed,
                    f"{name[:40]}{'…' if len(name) > 40 else ''} ({len(name)} "
                    f"character{'' if len(name) == 1 else 's'} with the prefix) must be 3 to "
                    "255 characters",
                )
