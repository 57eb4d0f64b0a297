"""Create the Transactions table, keyed by idempotencyKey, with the userId-timestamp index."""

from __future__ import annotations

from dynaledger.migrations import MigrationContext

revision = "0002"
down_revision = "0001"


def upgrade(ctx: MigrationContext) -> None:
    """Create (or adopt, adding the history index if missing) ``{prefix}Transactions``."""
    ctx.ensure_table(ctx.models.transaction)
