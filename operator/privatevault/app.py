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

import base64
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, start_http_server

from privatevault import memory
from privatevault.api.v1alpha1 import API_VERSION
from privatevault.cache import INFORMED, Cached, ClusterView
from privatevault.cluster import Cluster, SecretStore
from privatevault.compliance_facts import Facts, Gates
from privatevault.database import Pool, open_pool
from privatevault.errors import IntegrityError, PrivateVaultError
from privatevault.evidence import keys as evidence_keys
from privatevault.evidence import manifest
from privatevault.evidence.exporter import Exporter, finished
from privatevault.evidence.keys import EvidenceKeys
from privatevault.evidence.store import PgEvidenceSource
from privatevault.informer import Informers
from privatevault.kms import LocalKms
from privatevault.kms.tenants import LocalTenantKeys, Providers, VaultTenantKeys
from privatevault.kms.vault import KubernetesLogin, VaultAdmin, operator_client
from privatevault.ledger import ResourceRef
from privatevault.ledger.checkpoint import CheckpointError
from privatevault.ledger.checkpointer import Checkpointer, CheckpointRefused, Policy
from privatevault.ledger.cosignature import parse_cosignature_key
from privatevault.ledger.integrity import Anchor, Incident, Integrity, Published, Refusal
from privatevault.ledger.keyring import load_signers
from privatevault.ledger.store import Ledger, StoredCheckpoint
from privatevault.manifests import ledger as ledger_manifests
from privatevault.mcs.store import LevelStore
from privatevault.metrics import OperatorMetrics
from privatevault.quorum import dsse
from privatevault.reconcile.audit import event
from privatevault.reconcile.complianceframework import REPORT_DIGEST, CompliancePorts, Memory, ReportsPort
from privatevault.reconcile.ports import (
    ClusterPort,
    EvidenceExportPorts,
    LedgerPort,
    ProtectionPolicyPorts,
    TenantPorts,
)
from privatevault.settings import Settings
from privatevault.witness.client import Witness, Witnesses

log = logging.getLogger("privatevault.app")


class Locks:
    """One lock per object uid, so two reconciles of one object never overlap."""

    def __init__(self) -> None:
        self._locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
        self._guard = threading.Lock()

    def hold(self, uid: str) -> threading.Lock:
        with self._guard:
            return self._locks[uid]


class Finished:
    """The generation of each object whose reconcile this process finished (returned without a
    retry), until the object's own status says so: kopf can look at the object again, for an
    event that was already on its way, before the watch event of the finishing status write."""

    def __init__(self) -> None:
        self._generations: dict[str, int] = {}
        self._guard = threading.Lock()

    def mark(self, uid: str, generation: int) -> None:
        with self._guard:
            self._generations[uid] = generation

    def covers(self, uid: str, generation: int) -> bool:
        with self._guard:
            return self._generations.get(uid) == generation

    def forget(self, uid: str) -> None:
        with self._guard:
            self._generations.pop(uid, None)

    def __len__(self) -> int:
        return len(self._generations)


@dataclass
class OperatorAudit:
    """Records the operator's changes to its own objects (not a tenant's), before they are made."""

    ledger: Ledger
    settings: Settings

    def __call__(self, action: str, kind: str, name: str, namespace: str | None) -> None:
        self.record(action, ResourceRef(kind=kind, namespace=namespace, name=name), change=f"{kind}/{name}")

    def record(self, action: str, resource: ResourceRef, *, change: str, details: dict[str, Any] | None = None) -> None:
        self.ledger.append(
            event(
                kind="operator",
                uid=self.settings.namespace,
                tenant="",
                actor=self.settings.actor,
                action=action,
                resource=resource,
                change=change,
                details=details,
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
    #: The checkpointer's latest finding, read by the readiness probe and the metrics.
    integrity: Integrity
    #: The watch caches of the Kubernetes kinds the view reads (its stores are bound to it).
    informers: Informers
    witnesses: Witnesses | None = None
    #: The operator's evidence signing keys and the bundle writer (None in apps of fakes without them).
    evidence_keys: EvidenceKeys | None = None
    exporter: Exporter | None = None
    locks: Locks = field(default_factory=Locks)
    finished: Finished = field(default_factory=Finished)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    #: The compliance controller's memory: each framework's last results, rebuilt from the ledger.
    compliance: Memory = field(default_factory=Memory)
    #: The QuorumPolicies and tenant gates in force, read from the ledger once and kept; the
    #: compliance facts over the caches; the OpenReports writer (all made in ``__post_init__``).
    gates: Gates = field(init=False)
    facts: Facts = field(init=False)
    reports: Reports = field(init=False)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.gates = Gates(self.ledger)
        self.facts = Facts(self.cluster, self.gates, self.integrity, self.metrics.inventories)
        self.reports = Reports(self.cluster.live)

    def compliance_ports(self) -> CompliancePorts:
        return compliance_ports(self)

    def tenant_ports(self) -> TenantPorts:
        return TenantPorts(cluster=self.cluster, ledger=self.ledger, levels=self.levels, keys=self.providers)

    def protectionpolicy_ports(self) -> ProtectionPolicyPorts:
        return ProtectionPolicyPorts(cluster=self.cluster, ledger=self.ledger, keys=self.providers)

    def evidenceexport_ports(self) -> EvidenceExportPorts:
        keys, exporter = self.evidence_keys, self.exporter
        if keys is None or exporter is None:
            raise PrivateVaultError("this operator was built without evidence keys: it cannot export evidence")
        return EvidenceExportPorts(
            cluster=self.cluster,
            ledger=self.ledger,
            exporter=exporter,
            sign=lambda statement, algorithms: manifest.envelope_bytes(
                dsse.sign(statement, {a: pair for a, pair in keys.pairs.items() if a in algorithms})
            ),
        )

    def evidence_bundle(self, name: str) -> Path | None:
        """The finished bundle of the EvidenceExport ``name`` (for the read API), or None."""
        found = self.cluster.get(API_VERSION, "EvidenceExport", name)
        return None if found is None else finished(found)

    def start(self, on_change: Callable[[Cached, str, dict[str, Any]], None] | None = None) -> None:
        """The informers (``on_change`` hears of their changes), the checkpointer thread (its first
        tick signs the head left by the last run), the memory trimmer (``privatevault.memory``) and
        /metrics. The caller waits for the informers (``informers.wait``) before any handler runs."""
        self.informers.start(on_change)
        thread = threading.Thread(
            target=self._checkpoints,
            name="privatevault-checkpointer",
            daemon=True,
        )
        thread.start()
        self._threads.append(thread)
        if self.settings.memory_trim_interval > 0:
            trimmer = threading.Thread(
                target=memory.trim_every,
                args=(self.settings.memory_trim_interval, self._stop),
                name="privatevault-memory",
                daemon=True,
            )
            trimmer.start()
            self._threads.append(trimmer)
        if self.settings.metrics_port is not None:
            registry = CollectorRegistry()
            registry.register(self.metrics)
            start_http_server(self.settings.metrics_port, addr=self.settings.metrics_addr, registry=registry)

    def background(self, name: str, target: Callable[[threading.Event], None]) -> None:
        """Run ``target(stop)`` on a thread of its own until :meth:`close`."""
        thread = threading.Thread(target=target, args=(self._stop,), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _checkpoints(self) -> None:
        def report(exc: Exception) -> None:
            log.warning("checkpoint not issued: %s", exc)

        try:
            self.checkpointer.issue()
        except CheckpointRefused:
            pass  # the alarm has raised it
        except PrivateVaultError as exc:
            report(exc)
        self.checkpointer.run(self._stop, on_error=report)

    def close(self) -> None:
        self._stop.set()
        self.informers.stop()
        for thread in self._threads:
            thread.join(10)
        try:
            self.checkpointer.issue()  # the records of this run end under a signed head
        except Exception as exc:
            log.warning("final checkpoint not issued: %s", exc)
        if self.witnesses is not None:
            self.witnesses.close()
        self.ledger.close()
        self.pool.close()
        self.cluster.live.close()


class _ComplianceAdapters(Protocol):
    @property
    def cluster(self) -> ClusterPort: ...
    @property
    def ledger(self) -> LedgerPort: ...
    @property
    def facts(self) -> Facts: ...
    @property
    def reports(self) -> ReportsPort: ...
    @property
    def gates(self) -> Gates: ...


def compliance_ports(adapters: _ComplianceAdapters) -> CompliancePorts:
    """The compliance controller's ports over an App's adapters (or a test's fakes of them)."""
    return CompliancePorts(
        cluster=adapters.cluster,
        ledger=adapters.ledger,
        snapshot=adapters.facts.snapshot,
        reports=adapters.reports,
        policies=adapters.gates.policy,
    )


class Reports:
    """The OpenReports ``Report`` objects, written by server-side apply only where they changed.

    Whether the CRD ``reports.openreports.io`` is installed is read once, and again when a
    framework's reconcile asks (``recheck``); without it nothing is written. What each Report
    says is remembered by its digest (the ``REPORT_DIGEST`` annotation): after a restart, the
    first write of each Report reads the one there (once) instead of writing it again.
    """

    CRD = "reports.openreports.io"

    def __init__(self, live: Cluster) -> None:
        self._live = live
        self._installed: bool | None = None
        self._written: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def installed(self, *, recheck: bool = False) -> bool:
        if self._installed is None or recheck:
            found = self._live.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", self.CRD)
            self._installed = found is not None
        return self._installed

    def write(self, report: dict[str, Any]) -> bool:
        meta = report["metadata"]
        key = (str(meta["namespace"]), str(meta["name"]))
        wanted = meta["annotations"][REPORT_DIGEST]
        with self._lock:
            known = self._written.get(key)
        if known is None:
            current = self._live.get(report["apiVersion"], report["kind"], key[1], key[0])
            known = ((current or {}).get("metadata", {}).get("annotations") or {}).get(REPORT_DIGEST)
        if known == wanted:
            with self._lock:
                self._written[key] = wanted
            return False
        self._live.apply(report)
        with self._lock:
            self._written[key] = wanted
        return True

    def delete(self, name: str, namespace: str) -> None:
        with self._lock:
            self._written.pop((namespace, name), None)
        if self.installed():
            self._live.delete("openreports.io/v1alpha1", "Report", name, namespace)


@dataclass
class _Publisher:
    """The ConfigMap that publishes checkpoints outside the database (``ledger.checkpointer.Publication``)."""

    cluster: ClusterView
    namespace: str
    verifier_keys: list[str] = field(default_factory=list)
    evidence_keys: list[str] = field(default_factory=list)

    def _current(self) -> dict[str, Any] | None:
        # Live, never from a cache: what the checkpointer proves consistency from must be what is there.
        return self.cluster.live.get("v1", "ConfigMap", ledger_manifests.CHECKPOINT_CONFIGMAP, self.namespace)

    def read(self) -> Published:
        current = self._current()
        note, anchor = ledger_manifests.published_note(current), ledger_manifests.published_reanchor(current)
        try:
            parsed = None if anchor is None else Anchor.from_json(anchor)
        except IntegrityError as exc:
            log.warning("%s; it is ignored", exc)
            parsed = None
        return Published(note=None if note is None else note.encode(), anchor=parsed)

    def publish(self, checkpoint: StoredCheckpoint) -> None:
        """Put the checkpoint in the ConfigMap unless a newer one is there already (a re-anchor
        abandoning what is there lets an older size replace it; the apply removes the anchor)."""
        current = self._current()
        anchor = ledger_manifests.published_reanchor(current)
        abandoned = anchor is not None and _abandons(anchor, ledger_manifests.published_note(current) or "")
        if ledger_manifests.published_size(current) >= checkpoint.size and not abandoned:
            return
        self.cluster.apply(
            ledger_manifests.checkpoint_configmap(
                self.namespace, checkpoint.note, self.verifier_keys, evidence_keys=self.evidence_keys
            )
        )


def _abandons(anchor: str, note: str) -> bool:
    try:
        return Anchor.from_json(anchor).abandoned == note
    except IntegrityError:
        return False


@dataclass
class _IntegrityAlarm:
    """Raises a refused checkpoint where people look (``ledger.checkpointer.Alarm``).

    Every refused attempt logs an ERROR; when the alarm goes up (or its reason changes) a Warning
    Event is raised on the published ConfigMap and the ``LedgerVerified`` condition in
    ``privatevault-ledger-integrity`` turns False. The metrics and the readiness probe read the
    checkpointer's :class:`Integrity`. Once the ledger extends what was signed again, or a person
    re-anchored it, the incident is recorded in the ledger before the next checkpoint (that write
    is not best effort: if it fails, nothing is signed and it is tried again).
    """

    cluster: ClusterView
    namespace: str
    audit: OperatorAudit
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    _shown: tuple[bool, str] | None = None  # (verified, reason) of the condition last written

    def refused(self, refusal: Refusal, integrity: Integrity) -> None:
        since = integrity.since.isoformat() if integrity.since else "now"
        log.error(
            "ledger integrity: no checkpoint signed (%s; refused %d time(s) since %s): %s."
            " The published checkpoint is kept; see docs/ledger-threat-model.md",
            refusal.reason,
            integrity.attempts,
            since,
            refusal.message,
        )
        self._show(False, refusal.reason, refusal.message, {"treeSize": str(refusal.tree_size)}, warning=True)

    def resolved(self, incident: Incident) -> None:
        resource = ResourceRef(kind="ConfigMap", namespace=self.namespace, name=ledger_manifests.CHECKPOINT_CONFIGMAP)
        if incident.anchor is not None:
            anchor = incident.anchor
            self.audit.record(
                "reanchor-ledger",
                resource,
                change=anchor.digest(),
                details={
                    "abandoned": anchor.abandoned,
                    "size": anchor.size,
                    "root": base64.b64encode(anchor.root).decode(),
                    "reason": anchor.reason,
                    "by": anchor.by,
                    "at": anchor.at,
                },
            )
        if incident.refusal is not None:
            self.audit.record(
                "close-integrity-incident",
                resource,
                change=incident.key(),
                details={
                    "reason": incident.refusal.reason,
                    "problem": incident.refusal.message,
                    "refusedSince": incident.since.isoformat() if incident.since else None,
                    "refusedAttempts": incident.attempts,
                    "treeSizeAtRefusal": incident.refusal.tree_size,
                    "publishedSize": incident.refusal.published_size,
                    "treeSize": incident.tree_size,
                    "resolution": "re-anchored" if incident.anchor is not None else "consistent-again",
                },
            )
        if incident.anchor is not None:
            message = f"re-anchored at size {incident.anchor.size} by {incident.anchor.by}: {incident.anchor.reason}"
            log.warning("ledger integrity: %s; checkpoints resume", message)
            self._show(True, "Reanchored", message, {"anchorSize": str(incident.anchor.size)}, warning=True)
        else:
            message = f"the ledger extends every signed checkpoint again at size {incident.tree_size}"
            log.warning("ledger integrity: %s; checkpoints resume", message)
            self._show(True, "VerifiedAgain", message, {"treeSize": str(incident.tree_size)}, warning=False)

    def signed(self, checkpoint: StoredCheckpoint) -> None:
        if self._shown is None or not self._shown[0]:
            message = f"the checkpoint at size {checkpoint.size} extends every checkpoint signed before"
            self._show(True, "Verified", message, {"checkpointSize": str(checkpoint.size)}, warning=False, event=False)

    def _show(
        self, verified: bool, reason: str, message: str, facts: dict[str, str], *, warning: bool, event: bool = True
    ) -> None:
        """The condition and an Event, when they change; best effort (the refusal stands regardless)."""
        if self._shown == (verified, reason):
            return
        now = self.clock().isoformat().replace("+00:00", "Z")
        try:
            self.cluster.apply(
                ledger_manifests.integrity_configmap(
                    self.namespace, verified=verified, reason=reason, message=message, since=now, facts=facts
                )
            )
            if event:
                name = f"{ledger_manifests.CHECKPOINT_CONFIGMAP}.{time.time_ns():x}"
                self.cluster.create(
                    ledger_manifests.event(
                        self.namespace, name=name, warning=warning, reason=reason, message=message, time=now
                    )
                )
        except PrivateVaultError as exc:
            log.error("ledger integrity: could not write the condition or Event (%s): %s", reason, exc)
            return
        self._shown = (verified, reason)


def _vault(settings: Settings, cluster: ClusterView, audit: OperatorAudit) -> VaultTenantKeys | None:
    """Vault/OpenBao when configured; its Transit engine and Kubernetes auth are set up on first use."""
    if not settings.vault_addr:
        return None
    admin = VaultAdmin(
        operator_client(
            settings.vault_addr,
            token_file=settings.vault_token_file,
            login=_vault_login(settings),
            ca_file=settings.vault_ca_file,
        )
    )

    def setup() -> None:
        credentials = cluster.live.credentials()
        host = settings.vault_kubernetes_host or credentials.server
        ca_pem = Path(credentials.ca_path).read_text() if credentials.ca_path else ""
        audit("configure-vault-kubernetes-auth", "VaultAuthMethod", admin.auth_mount, None)
        jwt = cluster.live.token_reviewer_token(settings.namespace)
        admin.ensure_transit_mount()
        admin.ensure_kubernetes_auth(host, ca_pem, token_reviewer_jwt=jwt)

    return VaultTenantKeys(admin, setup=setup, recheck_seconds=settings.vault_recheck_seconds)


def _witnesses(settings: Settings) -> Witnesses | None:
    """The configured witnesses; a malformed verifier key stops the start (it is configuration)."""
    if not settings.witnesses:
        return None
    try:
        return Witnesses(
            [
                Witness(url, parse_cosignature_key(vkey), timeout=settings.witness_timeout)
                for url, vkey in settings.witnesses
            ]
        )
    except CheckpointError as exc:
        raise PrivateVaultError(f"PRIVATEVAULT_WITNESSES: {exc}") from exc


def _vault_login(settings: Settings) -> KubernetesLogin | None:
    """Kubernetes auth for the operator itself, unless a token file is given (the local demo)."""
    if settings.vault_token_file is not None or settings.vault_auth_role is None:
        return None
    return KubernetesLogin(
        role=settings.vault_auth_role, mount=settings.vault_auth_mount, jwt_file=settings.vault_jwt_file
    )


def build(settings: Settings, *, cluster: Cluster | None = None) -> App:
    """Connect every adapter; the operator's namespace, master key and signing keys exist afterwards."""
    view = ClusterView(cluster or Cluster.connect(settings.kubeconfig, pool_size=settings.workers + 4))
    informers = Informers(view.live, INFORMED)
    view.bind(informers.stores)
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
    evidence = evidence_keys.load(own, local_kms, origin=settings.ledger_origin)
    witnesses = _witnesses(settings)
    publisher = _Publisher(view, namespace, [signer.verifier_key for signer in signers], evidence.verifier_keys())
    checkpointer = Checkpointer(
        ledger,
        signers,
        origin=settings.ledger_origin,
        publication=publisher,
        alarm=_IntegrityAlarm(view, namespace, audit),
        policy=Policy(
            settings.checkpoint_every_records, settings.checkpoint_every_seconds, settings.checkpoint_verify_seconds
        ),
        witnesses=witnesses,
    )
    return App(
        settings=settings,
        cluster=view,
        pool=pool,
        ledger=ledger,
        levels=LevelStore(pool),
        providers=providers,
        checkpointer=checkpointer,
        metrics=OperatorMetrics(
            checkpointer.integrity,
            {} if witnesses is None else witnesses.status,
            # Every object is reconciled once per resync interval: one unseen for three is gone.
            forget_after=3 * max(settings.drift_interval, settings.protection_interval),
        ),
        integrity=checkpointer.integrity,
        informers=informers,
        witnesses=witnesses,
        evidence_keys=evidence,
        exporter=Exporter(
            PgEvidenceSource(pool, ledger),
            origin=settings.ledger_origin,
            verifiers=[signer.verifier for signer in signers],
            published=lambda: publisher.read().note,
        ),
    )
