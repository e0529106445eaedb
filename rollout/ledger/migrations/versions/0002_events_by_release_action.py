"""An index for the controller's most frequent read -- a release's last event of one action (its
last analysis, its measurements) -- which scanned all of a release's events. Additive: a
launchbay at 0001 runs unchanged on a ledger at 0002, and this one on a ledger at 0001."""

from alembic import op

revision = "0002"
down_revision = "0001"
required = False


def upgrade() -> None:
    op.create_index("ix_events_release_action", "events", ["release_id", "action"], if_not_exists=True)


def downgrade() -> None:
    op.drop_index("ix_events_release_action", "events", if_exists=True)
