"""The ledger as launchbay wrote it before schema versions: releases, chained append-only events,
webhook deliveries; one live release per model. On a ledger an older launchbay made, it adds
what is missing (the chain's columns, computed once) and changes nothing else."""

from alembic import op

from launchbay.rollout.ledger.schema import build

revision = "0001"
down_revision = None
required = True
"""Code at a later revision cannot run on a ledger before this one."""


def upgrade() -> None:
    build(op.get_bind())


def downgrade() -> None:
    raise NotImplementedError("the ledger's history is never dropped")
