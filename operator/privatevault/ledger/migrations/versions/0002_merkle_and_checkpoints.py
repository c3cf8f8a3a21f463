"""The Merkle tree's perfect-subtree nodes and the signed checkpoints, both append-only.

Revision ID: 0002
"""

from __future__ import annotations

import importlib

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

protect = importlib.import_module("privatevault.ledger.migrations.versions.0001_audit_records").protect


def upgrade() -> None:
    op.execute("""
        CREATE TABLE merkle_nodes (
            level smallint NOT NULL CHECK (level >= 0 AND level < 64),
            idx   bigint NOT NULL CHECK (idx >= 0),
            hash  bytea NOT NULL CHECK (length(hash) = 32),
            PRIMARY KEY (level, idx)
        );
        CREATE TABLE checkpoints (
            tree_size  bigint PRIMARY KEY CHECK (tree_size >= 0),
            root_hash  bytea NOT NULL CHECK (length(root_hash) = 32),
            note       bytea NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        );
    """)
    protect("merkle_nodes")
    protect("checkpoints")


def downgrade() -> None:
    raise NotImplementedError("the audit ledger is never downgraded: records would be lost")
