"""The ledger's schema, roles and privileges.

Migrations are Alembic revisions in ``ledger/migrations``. Two roles keep the ledger honest: an
owner that runs migrations and owns the tables, and the operator's role, which may only INSERT
and SELECT. Triggers refuse UPDATE, DELETE and TRUNCATE
for everyone, the owner included, so a record once written stays as written; only a superuser
who drops the triggers can change it, and the hash chain (with checkpoints published outside
the database) is what catches that.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

if TYPE_CHECKING:
    import sqlalchemy
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
TABLES = ("audit_records", "merkle_nodes", "checkpoints", "mcs_levels", "mcs_tombstones")


def _alembic(connection: sqlalchemy.Connection) -> Config:
    from alembic.config import Config  # noqa: PLC0415 - lazily, see migrate

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def migrate(owner_dsn: str, *, operator_role: str) -> str:
    """Upgrade the schema to the newest revision as its owner; grant the operator INSERT and SELECT.

    Returns the revision the database is at.

    SQLAlchemy and Alembic are imported here, not with the module: the operator imports this
    module through pvctl but never migrates, and the two cost it about 21 MB of memory.
    """
    import sqlalchemy  # noqa: PLC0415 - lazily, see above
    from alembic import command  # noqa: PLC0415 - lazily, see above

    engine = sqlalchemy.create_engine(
        "postgresql+psycopg://", creator=lambda: psycopg.connect(owner_dsn), poolclass=sqlalchemy.NullPool
    )
    try:
        with engine.begin() as connection:
            command.upgrade(_alembic(connection), "head")
            raw = connection.connection.driver_connection
            assert isinstance(raw, psycopg.Connection)
            role = sql.Identifier(operator_role)
            tables = sql.SQL(", ").join(sql.Identifier(t) for t in TABLES)
            raw.execute(sql.SQL("REVOKE ALL ON {tables} FROM PUBLIC, {role}").format(tables=tables, role=role))
            raw.execute(sql.SQL("GRANT SELECT, INSERT ON {tables} TO {role}").format(tables=tables, role=role))
            raw.execute(sql.SQL("GRANT SELECT ON alembic_version TO {role}").format(role=role))
            version = connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar_one()
    finally:
        engine.dispose()
    return str(version)


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
