"""An index for finding records by the start of their idempotency key.

The quorum gates keep what is in force (a QuorumPolicy's rules, a Tenant's gate, a
ProtectionPolicy's approved spec) and who requested a gated change as ledger records, and read
the latest of them back by key prefix (``quorumpolicy/<name>/in-force/``). The unique index on
the key uses the database collation, which cannot serve ``LIKE 'prefix%'``; this one can.

Revision ID: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX audit_records_key_prefix ON audit_records (idempotency_key text_pattern_ops)")


def downgrade() -> None:
    op.execute("DROP INDEX audit_records_key_prefix")
