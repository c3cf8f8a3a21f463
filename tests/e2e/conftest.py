"""Fixtures of the end-to-end tests: an operator that keeps tenant keys in the bench's OpenBao."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from privatevault.kms.vault import create_operator_token, vault_client
from privatevault.testbench import Bench
from privatevault.testbench.secretfile import write_secret
from tests.support import Kubectl, Operator

OPERATOR_TOKEN = "privatevault-operator-e2e-token"


def grant_operator(bench: Bench) -> None:
    """The operator's own token: only the policy it needs (made again after OpenBao restarts)."""
    root = vault_client(bench.openbao.address, token=bench.openbao.root_token)
    create_operator_token(root, token_id=OPERATOR_TOKEN, ttl="2h")


@pytest.fixture
def vault_operator(kubectl: Kubectl, bench: Bench, operator_dsn_file: Path, tmp_path: Path) -> Iterator[Operator]:
    grant_operator(bench)
    token_file = write_secret(tmp_path / "vault-token", OPERATOR_TOKEN)
    running = Operator(
        tmp_path,
        kubectl.kubeconfig,
        operator_dsn_file,
        PRIVATEVAULT_VAULT_ADDR=bench.openbao.address,
        PRIVATEVAULT_VAULT_TOKEN_FILE=str(token_file),
        PRIVATEVAULT_VAULT_KUBERNETES_HOST=bench.control_plane.server,
        PRIVATEVAULT_PROTECTION_INTERVAL="2",
    ).start()
    yield running
    running.stop()
