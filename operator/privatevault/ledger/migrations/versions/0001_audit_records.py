"""The append-only audit records table with its hash chain columns.

Revision ID: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

APPEND_ONLY = """
CREATE OR REPLACE FUNCTION privatevault_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit ledger is append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;
"""


def protect(table: str) -> None:
    """Refuse UPDATE, DELETE and TRUNCATE on ``table`` for every role, its owner included."""
    op.execute(f"""
        CREATE TRIGGER {table}_no_update BEFORE UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION privatevault_append_only();
        CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION privatevault_append_only();
    """)


def upgrade() -> None:
    op.execute("""
        CREATE TABLE audit_records (
            seq                bigint PRIMARY KEY CHECK (seq >= 1),
            recorded_at        timestamptz NOT NULL,
            tenant             text NOT NULL,
            actor              text NOT NULL,
            action             text NOT NULL,
            resource_kind      text NOT NULL,
            resource_namespace text,
            resource_name      text NOT NULL,
            resource_uid       text,
            outcome            text NOT NULL,
            canonical          bytea NOT NULL,
            prev_hash          bytea NOT NULL CHECK (length(prev_hash) = 32),
            record_hash        bytea NOT NULL UNIQUE CHECK (length(record_hash) = 32),
            idempotency_key    text NOT NULL UNIQUE
        );
        CREATE INDEX audit_records_tenant_seq ON audit_records (tenant, seq);
    """)
    op.execute(APPEND_ONLY)
    protect("audit_records")


def downgrade() -> None:
    raise NotImplementedError("the audit ledger is never downgraded: records would be lost")
