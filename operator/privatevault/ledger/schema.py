"""The ledger's schema, roles and privileges.

Two roles keep the ledger honest: an owner that runs migrations and owns the tables, and the
operator's role, which may only INSERT and SELECT. Triggers refuse UPDATE, DELETE and TRUNCATE
for everyone, the owner included, so a record once written stays as written; only a superuser
who drops the triggers can change it, and the hash chain (with checkpoints published outside
the database) is what catches that.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

SCHEMA_VERSION = 1

_DDL = """
CREATE TABLE IF NOT EXISTS ledger_schema (version integer PRIMARY KEY);

CREATE TABLE IF NOT EXISTS audit_records (
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
CREATE INDEX IF NOT EXISTS audit_records_tenant_seq ON audit_records (tenant, seq);

CREATE OR REPLACE FUNCTION privatevault_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit ledger is append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

DROP TRIGGER IF EXISTS audit_records_no_update ON audit_records;
CREATE TRIGGER audit_records_no_update BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION privatevault_append_only();
DROP TRIGGER IF EXISTS audit_records_no_truncate ON audit_records;
CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION privatevault_append_only();

INSERT INTO ledger_schema (version) VALUES (1) ON CONFLICT DO NOTHING;
"""


def migrate(owner_dsn: str, *, operator_role: str) -> None:
    """Bring the schema to the current version as its owner; grant the operator INSERT, SELECT."""
    with psycopg.connect(owner_dsn, autocommit=False) as conn:
        conn.execute(_DDL)
        conn.execute(
            sql.SQL("REVOKE ALL ON audit_records, ledger_schema FROM PUBLIC, {role}").format(
                role=sql.Identifier(operator_role)
            )
        )
        conn.execute(
            sql.SQL("GRANT SELECT, INSERT ON audit_records TO {role}").format(role=sql.Identifier(operator_role))
        )
        conn.execute(sql.SQL("GRANT SELECT ON ledger_schema TO {role}").format(role=sql.Identifier(operator_role)))


@dataclass(frozen=True)
class Database:
    """DSNs of a bootstrapped ledger database: the owner's (migrations) and the operator's."""

    owner_dsn: str
    operator_dsn: str


def bootstrap(superuser_dsn: str, *, database: str = "privatevault") -> Database:
    """Create the database and its two roles with fresh passwords, then migrate.

    Used by the test bench and the demo; a production install creates the roles its own way and
    runs ``pvctl ledger migrate`` with the owner's DSN.
    """
    owner, operator = f"{database}_owner", f"{database}_operator"
    passwords = {owner: secrets.token_urlsafe(24), operator: secrets.token_urlsafe(24)}
    with psycopg.connect(superuser_dsn, autocommit=True) as conn:
        for role, password in passwords.items():
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                sql.SQL(verb + " ROLE {role} LOGIN PASSWORD {password}").format(
                    role=sql.Identifier(role), password=sql.Literal(password)
                )
            )
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone():
            conn.execute(
                sql.SQL("CREATE DATABASE {db} OWNER {owner}").format(
                    db=sql.Identifier(database), owner=sql.Identifier(owner)
                )
            )
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {db} FROM PUBLIC").format(db=sql.Identifier(database)))
        conn.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {db} TO {operator}").format(
                db=sql.Identifier(database), operator=sql.Identifier(operator)
            )
        )

    def dsn(role: str) -> str:
        return make_conninfo(superuser_dsn, user=role, password=passwords[role], dbname=database)

    result = Database(owner_dsn=dsn(owner), operator_dsn=dsn(operator))
    migrate(result.owner_dsn, operator_role=operator)
    return result
