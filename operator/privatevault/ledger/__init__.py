"""The audit ledger: an append-only, hash-chained record of every change, in PostgreSQL.

The package exports the pure parts (events, records, the chain hash), which the decisions use;
the PostgreSQL store is ``privatevault.ledger.store``, imported by the composition root, the CLI
and tests only.
"""

from .chain import GENESIS, ChainBreak, record_hash, verify_chain
from .event import Event, Record, ResourceRef

__all__ = [
    "GENESIS",
    "ChainBreak",
    "Event",
    "Record",
    "ResourceRef",
    "record_hash",
    "verify_chain",
]
