"""SELinux MCS levels: one per tenant, unique, never reused (rows are never deleted).

Revision ID: 0003
"""

from __future__ import annotations

import importlib

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

protect = importlib.import_module("privatevault.ledger.migrations.versions.0001_audit_records").protect


def upgrade() -> None:
    op.execute("""
        CREATE TABLE mcs_levels (
            level           text PRIMARY KEY CHECK (level ~ '^s0:c[0-9]{1,4},c[0-9]{1,4}$'),
            tenant          text NOT NULL,
            tenant_uid      text NOT NULL UNIQUE,
            confidentiality text NOT NULL,
            integrity       text NOT NULL,
            compartments    text[] NOT NULL,
            hand_set        boolean NOT NULL,
            allocated_at    timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE mcs_tombstones (
            tenant_uid  text PRIMARY KEY REFERENCES mcs_levels (tenant_uid),
            released_at timestamptz NOT NULL DEFAULT now()
        );
    """)
    protect("mcs_levels")
    protect("mcs_tombstones")


def downgrade() -> None:
    raise NotImplementedError("MCS levels are never downgraded: a level could be reused")
