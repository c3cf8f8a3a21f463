"""Kubeconfig files with the credentials embedded, so a copied kubeconfig keeps working on its own.

They hold a client key, hence mode 0600.
"""

import base64
from pathlib import Path

import yaml

from privatevault.testbench.secretfile import write_secret

CONTEXT = "privatevault-bench"


def _data(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(path: Path, *, server: str, ca_cert: Path, client_cert: Path, client_key: Path, user: str) -> Path:
    """Write a single-context kubeconfig (cluster and context named privatevault-bench)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CONTEXT,
                "cluster": {"server": server, "certificate-authority-data": _data(ca_cert)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _data(client_cert),
                    "client-key-data": _data(client_key),
                },
            }
        ],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": user}}],
        "current-context": CONTEXT,
        "preferences": {},
    }
    return write_secret(path, yaml.safe_dump(config, sort_keys=False))
