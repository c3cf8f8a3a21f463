"""The operator's process-wide wiring: adapters built at start-up, the checkpointer thread, cleanup.

kopf's watches log in with the same credentials as the Kubernetes adapter. At start-up the
operator's namespace is ensured, the local KMS master key and the ledger's checkpoint signing
keys are loaded (created on first start, kept wrapped), and a thread issues checkpoints and
publishes each one in a ConfigMap.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

import kopf
from prometheus_client import CollectorRegistry, start_http_server

from privatevault.api.v1alpha1 import GROUP
from privatevault.cluster import Cluster, SecretStore
from privatevault.kms import LocalKms
from privatevault.kms.tenants import LocalTenantKeys, Providers, VaultTenantKeys
from privatevault.kms.vault import VaultAdmin, vault_client
from privatevault.ledger import Event, Ledger, ResourceRef
from privatevault.ledger.checkpointer import Checkpointer, Policy
from privatevault.ledger.keyring import load_signers
from privatevault.ledger.store import StoredCheckpoint
from privatevault.manifests import ledger as ledger_manifests
from privatevault.mcs import LevelStore
from privatevault.metrics import OperatorMetrics
from privatevault.reconcile.ports import TenantPorts
from privatevault.settings import Settings

log = logging.getLogger("privatevault.runtime")


class Runtime:
    """Adapters built at start-up, and one lock per tenant so reconciles of it never overlap."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cluster: Cluster | None = None
        self.ledger: Ledger | None = None
        self.checkpointer: Checkpointer | None = None
        self.providers: Providers | None = None
        self.local_kms: LocalKms | None = None
        self.metrics = OperatorMetrics()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)

    def lock(self, uid: str) -> threading.Lock:
        return self._locks[uid]

    def connect(self) -> Cluster:
        if self.cluster is None:
            self.cluster = Cluster.connect(self.settings.kubeconfig)
        return self.cluster

    def tenant_ports(self) -> TenantPorts:
        assert self.ledger is not None and self.providers is not None, "the operator has not started"
        return TenantPorts(
            cluster=self.connect(), ledger=self.ledger, levels=LevelStore(self.settings.ledger_dsn), keys=self.providers
        )

    def audit_operator_change(self, action: str, kind: str, name: str, namespace: str | None) -> None:
        """Record a change the operator makes to its own objects (not a tenant's), before making it."""
        assert self.ledger is not None
        self.ledger.append(
            Event(
                tenant="",
                actor=self.settings.actor,
                action=action,
                resource=ResourceRef(kind=kind, namespace=namespace, name=name),
                outcome="intended",
                idempotency_key=f"operator/{self.settings.namespace}/{action}/{kind}/{name}",
            )
        )

    def _own_secrets(self) -> SecretStore:
        """The operator's own Secrets (KMS master key, signing keys): each creation is audited first."""
        namespace = self.settings.namespace
        return SecretStore(
            self.connect(),
            namespace,
            before_create=lambda name: self.audit_operator_change("create-secret", "Secret", name, namespace),
        )

    def start_kms(self) -> None:
        """The local KMS always; Vault/OpenBao when configured (set up lazily: it may be down now)."""
        cluster = self.connect()
        # Tenant KEK Secrets are audited as part of their tenant's `provision-kek` record.
        store = SecretStore(cluster, self.settings.namespace)
        self.local_kms = LocalKms.from_secret(self._own_secrets())
        local = LocalTenantKeys(self.local_kms, store)
        vault = None
        if self.settings.vault_addr:
            token = self.settings.vault_token_file.read_text().strip() if self.settings.vault_token_file else None
            admin = VaultAdmin(vault_client(self.settings.vault_addr, token=token))
            vault = VaultTenantKeys(admin, setup=lambda: self._setup_vault(admin))
        self.providers = Providers(local=local, vault=vault)

    def _setup_vault(self, admin: VaultAdmin) -> None:
        """Transit engine and Kubernetes auth, with a token-reviewer ServiceAccount of our own."""
        cluster = self.connect()
        credentials = cluster.credentials()
        host = self.settings.vault_kubernetes_host or credentials.server
        ca_pem = Path(credentials.ca_path).read_text() if credentials.ca_path else ""
        self.audit_operator_change("configure-vault-kubernetes-auth", "VaultAuthMethod", admin.auth_mount, None)
        jwt = cluster.token_reviewer_token(self.settings.namespace)
        admin.ensure_transit_mount()
        admin.ensure_kubernetes_auth(host, ca_pem, token_reviewer_jwt=jwt)

    def publish(self, checkpoint: StoredCheckpoint) -> None:
        """Put the checkpoint in the ConfigMap, unless a newer one is there already."""
        cluster = self.connect()
        namespace = self.settings.namespace
        current = cluster.get("v1", "ConfigMap", ledger_manifests.CHECKPOINT_CONFIGMAP, namespace)
        if ledger_manifests.published_size(current) >= checkpoint.size:
            return
        keys = [signer.verifier_key for signer in (self.checkpointer.signers if self.checkpointer else [])]
        cluster.apply(ledger_manifests.checkpoint_configmap(namespace, checkpoint.note, keys))

    def start_checkpointer(self) -> None:
        assert self.ledger is not None
        assert self.local_kms is not None, "the KMS starts before the checkpointer"
        signers = load_signers(self._own_secrets(), self.local_kms, origin=self.settings.ledger_origin)
        policy = Policy(self.settings.checkpoint_every_records, self.settings.checkpoint_every_seconds)
        self.checkpointer = Checkpointer(
            self.ledger, signers, origin=self.settings.ledger_origin, publish=self.publish, policy=policy
        )
        self.checkpointer.issue()
        self._thread = threading.Thread(
            target=self.checkpointer.run,
            args=(self._stop,),
            kwargs={"on_error": lambda exc: log.warning("checkpoint not issued: %s", exc)},
            name="privatevault-checkpointer",
            daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self.checkpointer is not None:
            try:
                self.checkpointer.issue()  # the records of this run end under a signed head
            except Exception as exc:
                log.warning("final checkpoint not issued: %s", exc)
        if self.ledger is not None:
            self.ledger.close()
        if self.cluster is not None:
            self.cluster.close()


def register(registry: kopf.OperatorRegistry, runtime: Runtime) -> None:
    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        creds = runtime.connect().credentials()
        return kopf.ConnectionInfo(
            server=creds.server,
            ca_path=creds.ca_path,
            insecure=creds.insecure,
            certificate_path=creds.certificate_path,
            private_key_path=creds.private_key_path,
            token=creds.token,
        )

    @kopf.on.startup(registry=registry)
    def start(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Progress and diff-base live in annotations: the structural status schema would prune
        # anything kopf wrote under status.
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
        settings.persistence.finalizer = f"{GROUP}/finalizer"
        cluster = runtime.connect()
        runtime.ledger = Ledger(runtime.settings.ledger_dsn)
        namespace = runtime.settings.namespace
        if cluster.get("v1", "Namespace", namespace) is None:
            runtime.audit_operator_change("create-namespace", "Namespace", namespace, None)
            cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        runtime.start_kms()
        runtime.start_checkpointer()
        if runtime.settings.metrics_port is not None:
            registry_ = CollectorRegistry()
            registry_.register(runtime.metrics)
            start_http_server(runtime.settings.metrics_port, addr=runtime.settings.metrics_addr, registry=registry_)

    @kopf.on.cleanup(registry=registry)
    def stop(**_: Any) -> None:
        runtime.close()
