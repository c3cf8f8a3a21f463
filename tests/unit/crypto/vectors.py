"""Reads the X-Wing test vectors from the shared folder beside the repository, failing loudly if absent."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

TESTVECTORS = Path(__file__).resolve().parents[3] / ".." / "shared" / "testvectors"
XWING_FILE = TESTVECTORS / "xwing-draft-connolly-cfrg-xwing-kem.json"


@dataclass(frozen=True)
class XWingVector:
    seed: bytes
    sk: bytes
    pk: bytes
    eseed: bytes
    ct: bytes
    ss: bytes


def xwing_vectors() -> list[XWingVector]:
    """Every entry of the draft's ``test-vectors.json``; raises rather than skip when it is missing."""
    if not XWING_FILE.is_file():
        raise FileNotFoundError(
            f"X-Wing test vectors not found at {XWING_FILE.resolve()}: the tests read them from the shared"
            " folder beside the repository (shared/testvectors/), and must not run without them"
        )
    entries = json.loads(XWING_FILE.read_text())
    vectors = [
        XWingVector(**{field: bytes.fromhex(entry[field]) for field in ("seed", "sk", "pk", "eseed", "ct", "ss")})
        for entry in entries
    ]
    if not vectors:
        raise ValueError(f"{XWING_FILE} holds no vectors")
    return vectors
