"""A real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager) on loopback.

Like controller-runtime's envtest, it runs the upstream binaries without kubelets, so objects are
stored, validated, admitted and authorised exactly as in a cluster, but no pod ever runs. Unlike a
bare envtest it also runs the controllers the operator depends on (namespaces, service accounts and
their tokens, garbage collection, deployments and replica sets), each under its own service-account
identity and bootstrap RBAC role as in a real cluster, and it keeps the ServiceAccount admission
plugin enabled, with OwnerReferencesPermissionEnforcement as hardened clusters (OpenShift) run it.

Requests made with ServiceAccount tokens (other than the controllers' in kube-system) are written
to an audit log (:attr:`ControlPlane.audit_log`, metadata only): the chart's test reads what the
operator, running with its ServiceAccount's token, actually asked for.

The binaries are built from pinned Go modules by tools/build-control-plane.sh (`make setup`);
PV_KUBE_BIN_DIR and PV_ETCD_BIN_DIR override where they are looked up.
"""

import os
import shutil
import ssl
import subprocess
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

from privatevault.testbench.errors import BenchError
from privatevault.testbench.kubeconfig import CONTEXT, write_kubeconfig
from privatevault.testbench.pki import ClusterPKI
from privatevault.testbench.ports import LOOPBACK, free_port, free_ports
from privatevault.testbench.probe import http_get, http_ok, insecure_tls
from privatevault.testbench.process import ManagedProcess

#: Metadata of the requests ServiceAccounts make, but the controllers' (kube-system).
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    userGroups: ["system:serviceaccounts:kube-system"]
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  - level: None
"""

REPO_ROOT = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO_ROOT / "tools" / "build-control-plane.sh"
SERVICE_CIDR = "10.0.0.0/24"
SERVICE_IP = "10.0.0.1"  # the first address of SERVICE_CIDR: the `kubernetes` Service
ISSUER = "https://kubernetes.default.svc.cluster.local"
CONTROLLERS = (
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "deployment-controller",
    "replicaset-controller",
    "statefulset-controller",
    # Fills the built-in admin/edit/view roles, which tenant owners are bound to.
    "clusterrole-aggregation-controller",
)
ETCD_TIMEOUT = 30.0
APISERVER_TIMEOUT = 90.0
CONTROLLER_MANAGER_TIMEOUT = 60.0
DEFAULT_SERVICE_ACCOUNT_TIMEOUT = 30.0


def _binary_dirs() -> tuple[Path, Path]:
    """(kubernetes binary dir, etcd binary dir): the env overrides, else the build script's."""
    kube, etcd = os.environ.get("PV_KUBE_BIN_DIR"), os.environ.get("PV_ETCD_BIN_DIR")
    if kube is None or etcd is None:
        try:
            result = subprocess.run(
                [str(BUILD_SCRIPT), "--print-dirs"],
                capture_output=True,
                text=True,
                check=True,
                timeout=120,
            )
        except (OSError, subprocess.SubprocessError) as error:
            detail = getattr(error, "stderr", None) or error
            raise BenchError(
                f"could not locate the control-plane binaries with {BUILD_SCRIPT} --print-dirs: "
                f"{detail}\nRun `make setup`, or set PV_KUBE_BIN_DIR and PV_ETCD_BIN_DIR."
            ) from error
        printed_kube, printed_etcd = result.stdout.splitlines()[:2]
        kube, etcd = kube or printed_kube, etcd or printed_etcd
    return Path(kube), Path(etcd)


def _binary(directory: Path, name: str) -> Path:
    path = directory / name
    if not os.access(path, os.X_OK):
        raise BenchError(f"{name} not found at {path}; run `make setup` to build the control plane")
    return path


class ControlPlane:
    """etcd, kube-apiserver and kube-controller-manager with a fresh PKI, all on 127.0.0.1."""

    service_account_issuer = ISSUER

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir.resolve()
        self.pki = ClusterPKI(self.workdir / "pki")
        self.kubeconfig = self.workdir / "kubeconfig"
        self._logs = self.workdir / "logs"
        self._port: int | None = None
        self._processes: list[ManagedProcess] = []

    @cached_property
    def _binaries(self) -> dict[str, Path]:
        kube_dir, etcd_dir = _binary_dirs()
        binaries = {"etcd": _binary(etcd_dir, "etcd")}
        for name in ("kube-apiserver", "kube-controller-manager", "kubectl"):
            binaries[name] = _binary(kube_dir, name)
        return binaries

    @property
    def kubectl(self) -> Path:
        return self._binaries["kubectl"]

    @property
    def ca_file(self) -> Path:
        return self.pki.ca_cert

    @property
    def server(self) -> str:
        if self._port is None:
            raise BenchError("the control plane has not been started")
        return f"https://{LOOPBACK}:{self._port}"

    @property
    def audit_log(self) -> Path:
        """JSON lines, one audit event per request made with a ServiceAccount token."""
        return self.workdir / "audit" / "audit.log"

    @property
    def processes(self) -> list[ManagedProcess]:
        return list(self._processes)

    def start(self) -> None:
        """Start etcd, the apiserver and the controller manager, each once the previous is ready.

        Returns when the controller manager has created the default namespace's ServiceAccount.
        A missing binary fails before anything starts; if a later step fails, whatever was
        started is stopped again before the error propagates.
        """
        if self._processes:
            raise BenchError("the control plane is already running")
        try:
            self.pki.generate(SERVICE_IP)
            etcd_url = self._start_etcd()
            self._start_apiserver(etcd_url)
            write_kubeconfig(
                self.kubeconfig,
                server=self.server,
                ca_cert=self.pki.ca_cert,
                client_cert=self.pki.admin_cert,
                client_key=self.pki.admin_key,
                user=CONTEXT,
            )
            self._start_controller_manager()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the controller manager, the apiserver and etcd, in that order."""
        while self._processes:
            self._processes.pop().stop()

    def _run(self, name: str, argv: list[str], ready: Callable[[], bool], timeout: float) -> ManagedProcess:
        process = ManagedProcess(name, [str(self._binaries[name]), *argv], self._logs / f"{name}.log")
        self._processes.append(process)
        process.start()
        process.wait_ready(ready, timeout)
        return process

    def _admin_tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        context.load_cert_chain(self.pki.admin_cert, self.pki.admin_key)
        return context

    def _start_etcd(self) -> str:
        client_port, peer_port = free_ports(2)
        client_url, peer_url = f"http://{LOOPBACK}:{client_port}", f"http://{LOOPBACK}:{peer_port}"
        data_dir = self.workdir / "etcd"
        shutil.rmtree(data_dir, ignore_errors=True)
        data_dir.mkdir(parents=True, mode=0o700)
        argv = ["--name=bench", f"--data-dir={data_dir}"]
        argv += [f"--listen-client-urls={client_url}", f"--advertise-client-urls={client_url}"]
        argv += [f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}"]
        argv += [f"--initial-cluster=bench={peer_url}", "--unsafe-no-fsync", "--log-level=warn"]
        self._run("etcd", argv, lambda: http_ok(f"{client_url}/health"), ETCD_TIMEOUT)
        return client_url

    def _start_apiserver(self, etcd_url: str) -> None:
        self._port = free_port()
        pki = self.pki
        self.audit_log.parent.mkdir(parents=True, exist_ok=True)
        policy = self.audit_log.parent / "policy.yaml"
        policy.write_text(AUDIT_POLICY)
        argv = [
            f"--etcd-servers={etcd_url}",
            f"--bind-address={LOOPBACK}",
            f"--advertise-address={LOOPBACK}",
            f"--secure-port={self._port}",
            f"--cert-dir={self.workdir / 'apiserver'}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--service-account-key-file={pki.service_account_pub}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            f"--service-account-issuer={ISSUER}",
            f"--api-audiences={ISSUER}",
            "--authorization-mode=RBAC",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            "--enable-admission-plugins=OwnerReferencesPermissionEnforcement",
            f"--audit-policy-file={policy}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
        ]
        context, url = self._admin_tls(), f"{self.server}/readyz"
        self._run("kube-apiserver", argv, lambda: http_ok(url, context), APISERVER_TIMEOUT)

    def _start_controller_manager(self) -> None:
        kubeconfig = write_kubeconfig(
            self.pki.directory / "controller-manager.kubeconfig",
            server=self.server,
            ca_cert=self.pki.ca_cert,
            client_cert=self.pki.controller_manager_cert,
            client_key=self.pki.controller_manager_key,
            user="system:kube-controller-manager",
        )
        port = free_port()
        argv = [
            f"--kubeconfig={kubeconfig}",
            f"--controllers={','.join(CONTROLLERS)}",
            f"--service-account-private-key-file={self.pki.service_account_key}",
            f"--root-ca-file={self.pki.ca_cert}",
            "--use-service-account-credentials=true",
            "--leader-elect=false",
            f"--bind-address={LOOPBACK}",
            f"--secure-port={port}",
            f"--cert-dir={self.workdir / 'controller-manager'}",
        ]
        healthz, insecure = f"https://{LOOPBACK}:{port}/healthz", insecure_tls()
        process = self._run(
            "kube-controller-manager",
            argv,
            lambda: http_get(healthz, insecure) == b"ok",
            CONTROLLER_MANAGER_TIMEOUT,
        )
        context = self._admin_tls()
        account = f"{self.server}/api/v1/namespaces/default/serviceaccounts/default"
        process.wait_ready(
            lambda: http_ok(account, context),
            DEFAULT_SERVICE_ACCOUNT_TIMEOUT,
            waiting_for="the default ServiceAccount in namespace default",
        )
