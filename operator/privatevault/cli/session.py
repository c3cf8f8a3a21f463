"""What the approval commands reach outside the process: the cluster, the OS keyring, the clock,
the configuration folder. One :class:`Session` holds them; the commands take it from the typer
context (``ctx.obj``), so tests hand in a fake cluster and an in-memory keyring through
``CliRunner().invoke(app, args, obj=Session(...))`` instead of patching, and a real run builds
the real ones.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import typer
from keyring.backend import KeyringBackend

from privatevault.api.v1alpha1 import KINDS, Resource
from privatevault.cli.keystore import usable_keyring
from privatevault.cluster import Cluster
from privatevault.errors import ClusterUnavailable


class ClusterPort(Protocol):
    """The part of :class:`privatevault.cluster.Cluster` the commands use."""

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None: ...

    def list(
        self, api_version: str, kind: str, *, label_selector: str | None = None, namespace: str | None = None
    ) -> list[dict[str, Any]]: ...

    def create(self, obj: dict[str, Any]) -> dict[str, Any] | None: ...

    def close(self) -> None: ...


def connect(kubeconfig: Path | None) -> ClusterPort:
    """The cluster of ``kubeconfig``, else of $KUBECONFIG, else in-cluster or ~/.kube/config."""
    if kubeconfig is None and os.environ.get("KUBECONFIG"):
        kubeconfig = Path(os.environ["KUBECONFIG"].split(os.pathsep)[0])
    try:
        return Cluster.connect(kubeconfig)
    except Exception as exc:  # the client's ConfigException: only the Kubernetes adapter may import it
        raise ClusterUnavailable(f"cannot reach the cluster: {exc}") from exc


def _config_dir() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "privatevault"


@dataclass
class Session:
    connect: Callable[[Path | None], ClusterPort] = connect
    keyring: Callable[[], KeyringBackend | None] = usable_keyring
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    config_dir: Path = field(default_factory=_config_dir)


def session(ctx: typer.Context) -> Session:
    return ctx.obj if isinstance(ctx.obj, Session) else Session()


def resource(text: str) -> tuple[type[Resource], str]:
    """``KIND/NAME`` (kind as written, lower case, plural or short name) -> the kind and the name."""
    kind, _, name = text.partition("/")
    wanted = kind.lower()
    for candidate in KINDS:
        if wanted in {candidate.kind.lower(), candidate.plural, *candidate.short_names}:
            if not name:
                raise typer.BadParameter(f"name the object: {candidate.kind.lower()}/NAME")
            return candidate, name
    known = ", ".join(k.kind.lower() for k in KINDS)
    raise typer.BadParameter(f"{kind!r} is not a PrivateVault kind; one of {known}, as KIND/NAME")
