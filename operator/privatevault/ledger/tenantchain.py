"""Each tenant's own chain inside the one ledger: a per-tenant sequence and the previous record's hash.

Inclusion proofs show that the records in a bundle are genuine, not that none of the tenant's was
left out: records of all tenants share one chain. So every record of a tenant, from this version
on, also carries in its canonical bytes::

    "tenantSeq": n            1 for the tenant's first linked record, then +1 per record
    "tenantPrev": base64      the record hash of the tenant's previous record (32 zero bytes: none)

A bundle holding the tenant's records of a window, with the tenant's last record before it and
first record after it, then proves that nothing in between is missing: each record names the one
before it. Records written before this version keep their bytes (no ``tenantSeq``); the first
linked record of a tenant names the last unlinked one as its previous, with ``tenantSeq`` 1.
Records of no tenant (cluster-wide policies, approvals) are not linked.

Pure: the store reads the heads (:class:`Heads`) under its append lock and advances them per
record, so concurrent writers still build one chain per tenant.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any

from privatevault.ledger.chain import GENESIS

SEQ = "tenantSeq"
PREV = "tenantPrev"


def of(canonical: bytes) -> tuple[int, bytes] | None:
    """``(tenantSeq, tenantPrev)`` of a record's canonical bytes; None for an unlinked record."""
    body = json.loads(canonical)
    if SEQ not in body:
        return None
    return int(body[SEQ]), base64.b64decode(body[PREV], validate=True)


class Heads:
    """The latest record of each tenant, as ``(tenantSeq, record hash)``; advanced as records are written."""

    def __init__(self, latest: Iterable[tuple[str, bytes, bytes]] = ()) -> None:
        """``latest``: ``(tenant, canonical bytes, record hash)`` of each tenant's newest record."""
        self._heads: dict[str, tuple[int, bytes]] = {}
        self.update(latest)

    def update(self, latest: Iterable[tuple[str, bytes, bytes]]) -> None:
        """Add (or replace) tenants' newest records, as ``(tenant, canonical bytes, record hash)``."""
        for tenant, canonical, digest in latest:
            linked = of(canonical)
            self._heads[tenant] = (linked[0] if linked else 0, digest)

    def link(self, tenant: str) -> dict[str, Any]:
        """The fields the tenant's next record carries (none for a record of no tenant)."""
        if not tenant:
            return {}
        seq, prev = self._heads.get(tenant, (0, GENESIS))
        return {SEQ: seq + 1, PREV: base64.b64encode(prev).decode()}

    def get(self, tenant: str) -> tuple[int, bytes]:
        """``(tenantSeq, record hash)`` of the tenant's newest record; ``(0, GENESIS)`` for none."""
        return self._heads.get(tenant, (0, GENESIS))

    def set(self, tenant: str, seq: int, digest: bytes) -> None:
        """The tenant's newest record is now its ``seq``-th, of hash ``digest``."""
        self._heads[tenant] = (seq, digest)

    def advance(self, tenant: str, link: dict[str, Any], digest: bytes) -> None:
        if tenant:
            self._heads[tenant] = (int(link[SEQ]), digest)
