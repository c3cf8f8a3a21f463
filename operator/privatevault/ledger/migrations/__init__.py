"""Alembic migrations of the ledger schema, run by its owner role (never by the operator's)."""
