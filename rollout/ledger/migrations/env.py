"""Alembic's entry: migrations run on the connection `launchbay.rollout.ledger.migrations` passes."""

from alembic import context

from launchbay.rollout.ledger.migrations import VERSION_TABLE

context.configure(connection=context.config.attributes["connection"], version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
