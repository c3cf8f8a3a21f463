"""``pvctl audit verify --server``: the ledger verified through the read API, trusting only pinned keys.

The API is not trusted: the checkpoint it serves must verify with the ``--verifier-key`` keys
given on the command line (the keys published beside it are not used: the same server would
vouch for itself), then every record from 1 to the checkpoint's size is read page by page and
its hash and link recomputed, and the Merkle root over them compared with the signed root. It
needs a token allowed to list the audit of all tenants (the chain links records of every tenant).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass

from privatevault.cli.client import ReadApiClient
from privatevault.ledger import merkle
from privatevault.ledger.chain import GENESIS, record_hash
from privatevault.ledger.checkpoint import CheckpointError, KeyVerifier, parse_and_verify


@dataclass(frozen=True)
class RemoteReport:
    ok: bool
    records: int
    checkpoint_size: int | None
    problem: str = ""

    def row(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "records": self.records,
            "checkpointSize": self.checkpoint_size,
            "problem": self.problem,
        }


def verify(client: ReadApiClient, verifiers: Sequence[KeyVerifier]) -> RemoteReport:
    note = client.get("/api/v1/checkpoints/latest")["note"].encode()
    try:
        checkpoint = parse_and_verify(note, verifiers)
    except CheckpointError as exc:
        return RemoteReport(False, 0, None, f"the served checkpoint does not verify with the pinned keys: {exc}")
    prev, hashes = GENESIS, list[bytes]()
    for item in client.pages("/api/v1/audit", {"seqTo": checkpoint.size, "limit": 1000}):
        seq = int(item["seq"])
        canonical = item["canonical"].encode()
        stored_prev, stored = base64.b64decode(item["prevHash"]), base64.b64decode(item["recordHash"])
        if seq != len(hashes) + 1:
            return RemoteReport(False, len(hashes), checkpoint.size, f"record {len(hashes) + 1} is missing (got {seq})")
        if stored_prev != prev or record_hash(prev, canonical) != stored:
            return RemoteReport(False, len(hashes), checkpoint.size, f"record {seq} does not hash or link")
        prev = stored
        hashes.append(stored)
    if len(hashes) != checkpoint.size:
        return RemoteReport(False, len(hashes), checkpoint.size, f"only {len(hashes)} records up to the checkpoint")
    if merkle.root(hashes) != checkpoint.root:
        return RemoteReport(False, len(hashes), checkpoint.size, "the records' Merkle root is not the signed root")
    return RemoteReport(True, len(hashes), checkpoint.size)
