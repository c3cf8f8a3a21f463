"""Two indexes fewer on every append: the unique index on ``record_hash`` goes, and one unique
index on the idempotency key serves both the key look-up and the key-prefix search.

Each index of ``audit_records`` is written once per record, in the append's transaction; with
PostgreSQL durable, an index whose inserts land on random pages (a hash) also writes a full page
image of each page it first touches after a checkpoint. Measured on the batched append (issue 10,
item 5, ``docs/benchmarks.md``), these two were the largest part of PostgreSQL's time per batch.

- ``record_hash`` was UNIQUE since 0001, and nothing reads by it: records are read by ``seq``,
  tenant or key. Uniqueness is the hash chain's own property (a record hash covers the previous
  hash and the record's ``seq``), and the verifier recomputes every hash; an index that a
  superuser rewriting history drops and recreates at will adds no protection.
- The idempotency key had two indexes: the UNIQUE one of 0001 (the database collation, which
  cannot serve ``LIKE 'prefix%'``) and 0004's ``text_pattern_ops`` one for the prefix search.
  A UNIQUE index in ``text_pattern_ops`` does both (its equality is the text equality), so it
  replaces the two. Its name stays recognisable in the error a second append of a key raises.

Existing ledgers keep every record and node as they are; only indexes change.

Revision ID: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE UNIQUE INDEX audit_records_idempotency_key ON audit_records (idempotency_key text_pattern_ops);
        ALTER TABLE audit_records DROP CONSTRAINT audit_records_idempotency_key_key;
        DROP INDEX audit_records_key_prefix;
        ALTER TABLE audit_records DROP CONSTRAINT audit_records_record_hash_key;
    """)


def downgrade() -> None:
    op.execute("""
        ALTER TABLE audit_records ADD CONSTRAINT audit_records_record_hash_key UNIQUE (record_hash);
        CREATE INDEX audit_records_key_prefix ON audit_records (idempotency_key text_pattern_ops);
        ALTER TABLE audit_records ADD CONSTRAINT audit_records_idempotency_key_key UNIQUE (idempotency_key);
        DROP INDEX audit_records_idempotency_key;
    """)
