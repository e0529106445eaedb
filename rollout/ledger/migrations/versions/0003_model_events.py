"""Events about a model rather than one of its releases (an emergency freeze, its end): an event's
`release_id` may be empty. They sit in the model's one hash chain, witnessed like every other.

Additive (a constraint relaxed): launchbay runs on a ledger before it, except that it cannot record
an event about a model there -- `launchbay freeze` then names `launchbay ledger upgrade`."""

import sqlalchemy as sa
from alembic import op

from launchbay.rollout.ledger.schema import _SQLITE_APPEND_ONLY

revision = "0003"
down_revision = "0002"
required = False


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "sqlite":
        # A row-level trigger guards UPDATE/DELETE; ALTER TABLE changes no row.
        op.alter_column("events", "release_id", existing_type=sa.Integer, nullable=True)
        return
    # SQLite cannot alter a column: the table is copied (Alembic's batch mode), rows, ids and
    # indexes as they were; DROP TABLE fires no row trigger, and the append-only triggers, which
    # go with the old table, are made again on the new one.
    with op.batch_alter_table("events", recreate="always") as batch:
        batch.alter_column("release_id", existing_type=sa.Integer, nullable=True)
    for ddl in _SQLITE_APPEND_ONLY:
        conn.exec_driver_sql(ddl)


def downgrade() -> None:
    raise NotImplementedError("the ledger's history is never dropped")
