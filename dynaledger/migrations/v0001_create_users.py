"""Create the Users table, keyed by userId."""

from __future__ import annotations

from dynaledger.migrations import MigrationContext

revision = "0001"
down_revision = None


def upgrade(ctx: MigrationContext) -> None:
    """Create (or adopt) ``{prefix}Users``."""
    ctx.ensure_table(ctx.models.user)
