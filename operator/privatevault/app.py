"""The composition root: every adapter the operator uses, built once at start-up, in one object.

``build(settings)`` connects to the cluster, opens the one PostgreSQL pool (shared by the ledger
and the MCS level store), loads the KMS providers and the checkpoint signers, and returns an
:class:`App` with nothing optional left in it; ``App.start()`` starts the background work (the
checkpointer thread, the metrics server), ``App.close()`` stops it all. Handlers receive the App
and hand its ports to the decisions; nothing is built inside a reconcile and nothing at import
time, so tests build an App of fakes (``tests/unit/fakes.py``) the same way.

Start-up changes to the operator's own objects (its namespace, the KMS master key and signing-key
Secrets, the Vault auth setup) are audited like every other change, before they are made.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, start_http_server

from privatevault.cache import ClusterView
from privatevault.cluster import Cluster, SecretStore
from privatevault.database import Pool, open_pool
from privatevault.errors import PrivateVaultError
from privatevault.kms import LocalKms
from privatevault.kms.tenants import LocalTenantKeys, Providers, VaultTenantKeys
from privatevault.kms.vault import VaultAdmin, vault_client
from privatevault.ledger import ResourceRef
from privatevault.ledger.checkpointer import Checkpointer, Policy
from privatevault.ledger.keyring import load_signers
from privatevault.ledger.store import Ledger, StoredCheckpoint
from privatevault.manifests import ledger as ledger_manifests
from privatevault.mcs.store import LevelStore
from privatevault.metrics import OperatorMetrics
from privatevault.reconcile.audit import event
from privatevault.reconcile.ports import ProtectionPolicyPorts, TenantPorts
from privatevault.settings import Settings

log = logging.getLogger("privatevault.app")


class Locks:
    """One lock per object uid, so two reconciles of one object never overlap."""

    def __init__(self) -> None:
        self._locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
        self._guard = threading.Lock()

    def hold(self, uid: str) -> threading.Lock:
        with self._guard:
            return self._locks[uid]


@dataclass
class OperatorAudit:
    """Records the operator's changes to its own objects (not a tenant's), before they are made."""

    ledger: Ledger
    settings: Settings

    def __call__(self, action: str, kind: str, name: str, namespace: str | None) -> None:
        self.ledger.append(
            event(
                kind="operator",
                uid=self.settings.namespace,
                tenant="",
                actor=self.settings.actor,
                action=action,
                resource=ResourceRef(kind=kind, namespace=namespace, name=name),
                change=f"{kind}/{name}",
            )
        )


@dataclass
class App:
    """Everything the handlers need, built once; see :func:`build`."""

    settings: Settings
    cluster: ClusterView
    pool: Pool
    ledger: Ledger
    levels: LevelStore
    providers: Providers
    checkpointer: Checkpointer
    metrics: OperatorMetrics
    locks: Locks = field(default_factory=Locks)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def tenant_ports(self) -> TenantPorts:
        return TenantPorts(cluster=self.cluster, ledger=self.ledger, levels=self.levels, keys=self.providers)

    def protectionpolicy_ports(self) -> ProtectionPolicyPorts:
        return ProtectionPolicyPorts(cluster=self.cluster, ledger=self.ledger, keys=self.providers)

    def start(self) -> None:
        """The checkpointer thread (its first tick signs the head left by the last run) and /metrics."""
        thread = threading.Thread(
            target=self._checkpoints,
            name="privatevault-checkpointer",
            daemon=True,
        )
        thread.start()
        self._threads.append(thread)
        if self.settings.metrics_port is not None:
            registry = CollectorRegistry()
            registry.register(self.metrics)
            start_http_server(self.settings.metrics_port, addr=self.settings.metrics_addr, registry=registry)

    def _checkpoints(self) -> None:
        def report(exc: Exception) -> None:
            log.warning("checkpoint not issued: %s", exc)

        try:
            self.checkpointer.issue()
        except PrivateVaultError as exc:
            report(exc)
        self.checkpointer.run(self._stop, on_error=report)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)
        try:
            self.checkpointer.issue()  # the records of this run end under a signed head
        except Exception as exc:
            log.warning("final checkpoint not issued: %s", exc)
        self.ledger.close()
        self.pool.close()
        self.cluster.live.close()


@dataclass
class _Publisher:
    """Puts each checkpoint in the ConfigMap, unless a newer one is there already."""

    cluster: ClusterView
    namespace: str
    verifier_keys: list[str] = field(default_factory=list)

    def __call__(self, checkpoint: StoredCheckpoint) -> None:
        current = self.cluster.get("v1", "ConfigMap", ledger_manifests.CHECKPOINT_CONFIGMAP, self.namespace)
        if ledger_manifests.published_size(current) >= checkpoint.size:
            return
        self.cluster.apply(ledger_manifests.checkpoint_configmap(self.namespace, checkpoint.note, self.verifier_keys))


def _vault(settings: Settings, cluster: ClusterView, audit: OperatorAudit) -> VaultTenantKeys | None:
    """Vault/OpenBao when configured; its Transit engine and Kubernetes auth are set up on first use."""
    if not settings.vault_addr:
        return None
    token = settings.vault_token_file.read_text().strip() if settings.vault_token_file else None
    admin = VaultAdmin(vault_client(settings.vault_addr, token=token))

    def setup() -> None:
        credentials = cluster.live.credentials()
        host = settings.vault_kubernetes_host or credentials.server
        ca_pem = Path(credentials.ca_path).read_text() if credentials.ca_path else ""
        audit("configure-vault-kubernetes-auth", "VaultAuthMethod", admin.auth_mount, None)
        jwt = cluster.live.token_reviewer_token(settings.namespace)
        admin.ensure_transit_mount()
        admin.ensure_kubernetes_auth(host, ca_pem, token_reviewer_jwt=jwt)

    return VaultTenantKeys(admin, setup=setup, recheck_seconds=settings.vault_recheck_seconds)


def build(settings: Settings, *, cluster: Cluster | None = None) -> App:
    """Connect every adapter; the operator's namespace, master key and signing keys exist afterwards."""
    view = ClusterView(cluster or Cluster.connect(settings.kubeconfig))
    pool = open_pool(settings.ledger_dsn, max_size=settings.database_connections)
    ledger = Ledger(pool=pool)
    audit = OperatorAudit(ledger, settings)
    namespace = settings.namespace
    if view.live.get("v1", "Namespace", namespace) is None:
        audit("create-namespace", "Namespace", namespace, None)
        view.live.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    own = SecretStore(view, namespace, before_create=lambda name: audit("create-secret", "Secret", name, namespace))
    local_kms = LocalKms.from_secret(own)
    # Tenant KEK Secrets are audited as part of their tenant's `provision-kek` record.
    providers = Providers(
        local=LocalTenantKeys(local_kms, SecretStore(view, namespace)), vault=_vault(settings, view, audit)
    )
    signers = load_signers(own, local_kms, origin=settings.ledger_origin)
    publisher = _Publisher(view, namespace, [signer.verifier_key for signer in signers])
    checkpointer = Checkpointer(
        ledger,
        signers,
        origin=settings.ledger_origin,
        publish=publisher,
        policy=Policy(settings.checkpoint_every_records, settings.checkpoint_every_seconds),
    )
    return App(
        settings=settings,
        cluster=view,
        pool=pool,
        ledger=ledger,
        levels=LevelStore(pool),
        providers=providers,
        checkpointer=checkpointer,
        metrics=OperatorMetrics(),
    )
