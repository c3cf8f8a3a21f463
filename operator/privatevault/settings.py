"""Operator settings, read once at start-up from the environment (and the CLI's flags).

Secrets never come from flags (they would show in ``ps``): the ledger DSN is read from the
environment or from a file whose path is given.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

ENV_PREFIX = "PRIVATEVAULT_"


def ledger_dsn(env: dict[str, str] | None = None) -> str:
    """The ledger's PostgreSQL URL from PRIVATEVAULT_LEDGER_DSN, else the file PRIVATEVAULT_LEDGER_DSN_FILE names."""
    env = dict(os.environ if env is None else env)
    dsn = env.get(f"{ENV_PREFIX}LEDGER_DSN")
    dsn_file = env.get(f"{ENV_PREFIX}LEDGER_DSN_FILE")
    if not dsn and dsn_file:
        dsn = Path(dsn_file).read_text().strip()
    if not dsn:
        raise ValueError(
            f"no ledger database: set {ENV_PREFIX}LEDGER_DSN or {ENV_PREFIX}LEDGER_DSN_FILE"
            " (a PostgreSQL URL for the operator's role); audit is mandatory"
        )
    return dsn


def witnesses(text: str) -> tuple[tuple[str, str], ...]:
    """PRIVATEVAULT_WITNESSES: ``<submission URL> <verifier key>`` entries, one per line or comma-separated."""
    entries = []
    for entry in text.replace(",", "\n").splitlines():
        fields = entry.split()
        if not fields:
            continue
        if len(fields) != 2 or not fields[0].startswith(("http://", "https://")):
            raise ValueError(
                f"{ENV_PREFIX}WITNESSES entry {entry.strip()[:80]!r} is not `<http(s) URL> <witness verifier key>`"
            )
        entries.append((fields[0], fields[1]))
    return tuple(entries)


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


@dataclass(frozen=True, kw_only=True)
class WebhookSettings:
    """The validating admission webhook that records who requests each gated action (off by default).

    It listens on ``addr:port`` over TLS; the API server reaches it at ``https://host:port/...``
    (``host`` defaults to ``addr``). Without ``cert_file``/``key_file`` a CA and a certificate for
    ``host`` are generated into the state directory; ``ca_file`` is the bundle the API server is
    given (default: the CA that signed the certificate, else the certificate itself).
    """

    enabled: bool = False
    addr: str = "127.0.0.1"
    port: int = 9443
    host: str | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    ca_file: Path | None = None
    #: The ValidatingWebhookConfiguration kopf keeps up to date (one per operator installation).
    configuration: str = "validating.privatevault.io"
    #: Seconds a request waits for its record before it is let through unrecorded.
    record_timeout: float = 3.0
    #: ``namespace/name`` of a Service in front of the webhook: the API server is then told to call
    #: the Service (``clientConfig.service``), which works where it cannot resolve cluster DNS.
    service: str | None = None

    @property
    def advertised_host(self) -> str:
        return self.host or ("127.0.0.1" if self.addr in {"0.0.0.0", ""} else self.addr)  # noqa: S104

    @classmethod
    def from_env(cls, env: dict[str, str]) -> WebhookSettings:
        prefix = f"{ENV_PREFIX}WEBHOOK_"
        return cls(
            enabled=_flag(env.get(f"{prefix}ENABLED")),
            addr=env.get(f"{prefix}ADDR", cls.addr),
            port=int(env.get(f"{prefix}PORT", cls.port)),
            host=env.get(f"{prefix}HOST") or None,
            cert_file=_path(env.get(f"{prefix}CERT_FILE")),
            key_file=_path(env.get(f"{prefix}KEY_FILE")),
            ca_file=_path(env.get(f"{prefix}CA_FILE")),
            configuration=env.get(f"{prefix}CONFIGURATION", cls.configuration),
            record_timeout=float(env.get(f"{prefix}RECORD_TIMEOUT", cls.record_timeout)),
            service=env.get(f"{prefix}SERVICE") or None,
        )


@dataclass(frozen=True, kw_only=True)
class ApiSettings:
    """The read API (``/healthz``, ``/readyz``, ``/metrics``, ``/api/v1/...``), over TLS; off unless a port is set.

    Without ``cert_file``/``key_file`` a certificate for ``host`` (default: ``addr``, or 127.0.0.1
    for a wildcard address) is generated into the state directory, as for the webhook.
    """

    addr: str = "0.0.0.0"  # noqa: S104 - a pod's port; NetworkPolicy narrows who connects
    port: int | None = None
    host: str | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    #: MiB of the Merkle tree's hashes kept for proofs (``ledger.tiles``): ~17 KiB per 256 records.
    proof_cache_mib: int = 128

    @property
    def advertised_host(self) -> str:
        return self.host or ("127.0.0.1" if self.addr in {"0.0.0.0", ""} else self.addr)  # noqa: S104

    @classmethod
    def from_env(cls, env: dict[str, str]) -> ApiSettings:
        prefix = f"{ENV_PREFIX}API_"
        return cls(
            addr=env.get(f"{prefix}ADDR", cls.addr),
            port=int(port) if (port := env.get(f"{prefix}PORT")) else None,
            host=env.get(f"{prefix}HOST") or None,
            cert_file=_path(env.get(f"{prefix}CERT_FILE")),
            key_file=_path(env.get(f"{prefix}KEY_FILE")),
            proof_cache_mib=int(env.get(f"{prefix}PROOF_CACHE_MIB", cls.proof_cache_mib)),
        )


@dataclass(frozen=True, kw_only=True)
class Settings:
    ledger_dsn: str
    kubeconfig: Path | None = None
    namespace: str = "privatevault-system"
    actor: str = "privatevault-operator"
    drift_interval: float = 60.0
    protection_interval: float = 30.0
    retry_delay: float = 5.0
    #: Run only while holding the Lease ``privatevault-operator`` in ``namespace`` (several replicas).
    leader_election: bool = False
    #: Seconds a Lease not renewed stays with its holder; renewals come every ~duration/7.5.
    lease_seconds: float = 15.0
    ledger_origin: str = "privatevault.io/ledger"
    checkpoint_every_records: int = 1000
    checkpoint_every_seconds: float = 60.0
    #: An idle ledger is proved consistent with the published checkpoint again this often.
    checkpoint_verify_seconds: float = 3600.0
    #: Witnesses that cosign each new checkpoint: (submission URL prefix, cosignature verifier key).
    witnesses: tuple[tuple[str, str], ...] = ()
    #: Seconds to wait for one witness's answer; a late witness delays publishing, never appends.
    witness_timeout: float = 5.0
    vault_addr: str | None = None
    metrics_port: int | None = None
    metrics_addr: str = "0.0.0.0"  # noqa: S104 - a pod's metrics port; NetworkPolicy narrows who scrapes
    vault_token_file: Path | None = None
    #: Without a token file, the operator logs in to Vault through Kubernetes auth as this role.
    vault_auth_role: str | None = None
    vault_auth_mount: str = "kubernetes"
    #: The ServiceAccount token it logs in with (a projected, kubelet-rotated token in the chart).
    vault_jwt_file: Path = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
    #: CA bundle of Vault's TLS certificate; default: the system's.
    vault_ca_file: Path | None = None
    vault_kubernetes_host: str | None = None
    #: How long an unchanged vault tenant's key, policy and role count as checked (OpenBao drift is repaired after).
    vault_recheck_seconds: float = 600.0
    #: PostgreSQL connections shared by the ledger and the MCS level store (the ledger's writer
    #: uses up to 3 while it writes: the head lock and two batches in flight).
    database_connections: int = 6
    #: Threads running reconciles; they wait mostly on the API server and the ledger, not the CPU.
    workers: int = 16
    #: Connections kopf's own session keeps to the API server (watches, patches, events). kopf's
    #: default has no limit: a thousand objects handled at once held a thousand TLS connections.
    api_connections: int = 64
    #: Seconds between two returns of freed heap memory to the system (``privatevault.memory``); 0: never.
    memory_trim_interval: float = 60.0
    #: Where the operator keeps files of its own (the webhook's generated certificate).
    state_dir: Path = Path.home() / ".local" / "state" / "privatevault"
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    api: ApiSettings = field(default_factory=ApiSettings)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        return cls(
            ledger_dsn=ledger_dsn(env),
            kubeconfig=Path(env["KUBECONFIG"]) if env.get("KUBECONFIG") else None,
            namespace=env.get(f"{ENV_PREFIX}NAMESPACE", cls.namespace),
            actor=env.get(f"{ENV_PREFIX}ACTOR", cls.actor),
            drift_interval=float(env.get(f"{ENV_PREFIX}DRIFT_INTERVAL", cls.drift_interval)),
            protection_interval=float(env.get(f"{ENV_PREFIX}PROTECTION_INTERVAL", cls.protection_interval)),
            retry_delay=float(env.get(f"{ENV_PREFIX}RETRY_DELAY", cls.retry_delay)),
            leader_election=_flag(env.get(f"{ENV_PREFIX}LEADER_ELECTION")),
            lease_seconds=float(env.get(f"{ENV_PREFIX}LEASE_SECONDS", cls.lease_seconds)),
            ledger_origin=env.get(f"{ENV_PREFIX}LEDGER_ORIGIN", cls.ledger_origin),
            metrics_port=int(port) if (port := env.get(f"{ENV_PREFIX}METRICS_PORT")) else None,
            metrics_addr=env.get(f"{ENV_PREFIX}METRICS_ADDR", cls.metrics_addr),
            vault_addr=env.get(f"{ENV_PREFIX}VAULT_ADDR") or None,
            vault_token_file=Path(env[f"{ENV_PREFIX}VAULT_TOKEN_FILE"])
            if env.get(f"{ENV_PREFIX}VAULT_TOKEN_FILE")
            else None,
            vault_auth_role=env.get(f"{ENV_PREFIX}VAULT_AUTH_ROLE") or None,
            vault_auth_mount=env.get(f"{ENV_PREFIX}VAULT_AUTH_MOUNT") or cls.vault_auth_mount,
            vault_jwt_file=Path(env.get(f"{ENV_PREFIX}VAULT_JWT_FILE") or cls.vault_jwt_file),
            vault_ca_file=Path(ca) if (ca := env.get(f"{ENV_PREFIX}VAULT_CA_FILE")) else None,
            vault_kubernetes_host=env.get(f"{ENV_PREFIX}VAULT_KUBERNETES_HOST") or None,
            vault_recheck_seconds=float(env.get(f"{ENV_PREFIX}VAULT_RECHECK_SECONDS", cls.vault_recheck_seconds)),
            database_connections=int(env.get(f"{ENV_PREFIX}DATABASE_CONNECTIONS", cls.database_connections)),
            workers=int(env.get(f"{ENV_PREFIX}WORKERS", cls.workers)),
            api_connections=int(env.get(f"{ENV_PREFIX}API_CONNECTIONS", cls.api_connections)),
            memory_trim_interval=float(env.get(f"{ENV_PREFIX}MEMORY_TRIM_INTERVAL", cls.memory_trim_interval)),
            state_dir=_path(env.get(f"{ENV_PREFIX}STATE_DIR")) or cls.state_dir,
            webhook=WebhookSettings.from_env(env),
            api=ApiSettings.from_env(env),
            checkpoint_every_records=int(
                env.get(f"{ENV_PREFIX}CHECKPOINT_EVERY_RECORDS", cls.checkpoint_every_records)
            ),
            checkpoint_every_seconds=float(
                env.get(f"{ENV_PREFIX}CHECKPOINT_EVERY_SECONDS", cls.checkpoint_every_seconds)
            ),
            checkpoint_verify_seconds=float(
                env.get(f"{ENV_PREFIX}CHECKPOINT_VERIFY_SECONDS", cls.checkpoint_verify_seconds)
            ),
            witnesses=witnesses(env.get(f"{ENV_PREFIX}WITNESSES", "")),
            witness_timeout=float(env.get(f"{ENV_PREFIX}WITNESS_TIMEOUT", cls.witness_timeout)),
        )
