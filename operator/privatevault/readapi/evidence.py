"""The seam between evidence bundles and the read API (``/api/v1/evidence/{name}``).

The evidence code (bundle writer, EvidenceExport controller) hands the read API one function,
a :data:`Locator`: given an EvidenceExport's name, the bundle it wrote (a finished file, never a
partial one) and the tenants it covers, or None when there is none (yet). The API authorises the
caller for every one of those tenants (resource ``evidence``) and streams the file, stating the
digest the export's status reports (``sha256:<hex>``) in ``Repr-Digest`` so that the client checks
what it received against what the exporter wrote. It is passed
to :func:`privatevault.handlers.readapi.register` (``evidence=``) where the handlers are wired.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EvidenceBundle:
    path: Path
    tenants: tuple[str, ...]
    media_type: str = "application/gzip"
    digest: str | None = None


Locator = Callable[[str], EvidenceBundle | None]


def none(_: str) -> EvidenceBundle | None:
    """The locator until evidence bundles exist: every name is unknown."""
    return None
