"""The audit ledger: an append-only, hash-chained record of every change, in PostgreSQL."""

from .chain import GENESIS, ChainBreak, record_hash, verify_chain
from .event import Event, Record, ResourceRef
from .store import Ledger

__all__ = [
    "GENESIS",
    "ChainBreak",
    "Event",
    "Ledger",
    "Record",
    "ResourceRef",
    "record_hash",
    "verify_chain",
]
