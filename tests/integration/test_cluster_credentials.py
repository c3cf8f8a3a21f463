"""The credentials kopf's watches log in with are the Kubernetes adapter's own, whatever the
kubeconfig holds: a ServiceAccount token (as in a pod, or a token kubeconfig) reaches kopf as a
token, not as an anonymous connection."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml

from privatevault.cluster import Cluster
from privatevault.errors import SpecError
from tests.support import Kubectl

pytestmark = pytest.mark.integration


def test_a_token_kubeconfig_gives_kopf_its_token(kubectl: Kubectl, tmp_path: Path) -> None:
    namespace = f"creds-{uuid.uuid4().hex[:8]}"
    kubectl.run("create", "namespace", namespace)
    kubectl.run("create", "serviceaccount", "reader", "-n", namespace)
    token = kubectl.run("create", "token", "reader", "-n", namespace, "--duration=10m").stdout.strip()
    admin = yaml.safe_load(kubectl.kubeconfig.read_text())
    cluster = admin["clusters"][0]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": "reader", "user": {"token": token}}],
        "contexts": [{"name": "reader", "context": {"cluster": cluster["name"], "user": "reader"}}],
        "current-context": "reader",
    }
    path = tmp_path / "token.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    connected = Cluster.connect(path)
    try:
        credentials = connected.credentials()
        assert credentials.token == token
        assert credentials.certificate_path is None
        # The token is what the server sees: the ServiceAccount may not even read its namespace.
        with pytest.raises(SpecError, match=r"(?i)forbidden"):
            connected.get("v1", "Namespace", namespace)
    finally:
        connected.close()
        kubectl.run("delete", "namespace", namespace, "--wait=false")
