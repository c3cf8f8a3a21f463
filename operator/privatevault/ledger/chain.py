"""The hash chain: pure functions over record bytes, shared by the writer and the verifier.

Each record hash is SHA-256 over a domain tag, the previous record's hash and the record's
canonical bytes, so that a record hash can never be confused with any other hash the product
computes (Merkle nodes, checkpoints), and changing, removing, reordering or inserting a record
breaks every hash after it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

DOMAIN = b"privatevault/ledger/record/v1\x00"
GENESIS = bytes(32)


def record_hash(prev_hash: bytes, canonical: bytes) -> bytes:
    return hashlib.sha256(DOMAIN + prev_hash + canonical).digest()


@dataclass(frozen=True)
class ChainBreak:
    """The first record that does not verify, and why."""

    seq: int
    problem: str


#: What the chain check reads of a record: ``(seq, canonical, prev_hash, record_hash, ...)``. A
#: :class:`Record` is one; the verifier streams plain tuples of the first four, millions of them.
ChainRow = tuple[Any, ...]


def verify_chain(records: Iterable[ChainRow], *, start_hash: bytes = GENESIS, start_seq: int = 1) -> ChainBreak | None:
    """Check sequence, links and hashes in order; return the first break, or None."""
    expected_seq, prev = start_seq, start_hash
    sha256, domain = hashlib.sha256, DOMAIN
    for seq, body, prev_hash, digest, *_ in records:
        if seq != expected_seq:
            return ChainBreak(expected_seq, f"sequence gap: expected {expected_seq}, found {seq}")
        if prev_hash != prev:
            return ChainBreak(seq, "previous hash does not match the record before it")
        if sha256(domain + prev + body).digest() != digest:  # record_hash(), inlined: the hot loop
            return ChainBreak(seq, "record hash does not match its bytes")
        if b'"seq":%d,' % seq not in body:
            return ChainBreak(seq, "sequence number inside the record differs from its position")
        expected_seq, prev = seq + 1, digest
    return None
