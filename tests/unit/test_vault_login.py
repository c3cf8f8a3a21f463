"""How the operator logs in to Vault, from its settings: a token file (the local demo), else
Kubernetes auth with its ServiceAccount token (the chart), re-read and logged in again before
the lease ends (the transport is tested against OpenBao in tests/integration/test_vault.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from privatevault.app import _vault_login
from privatevault.errors import KmsError
from privatevault.kms.vault import KubernetesLogin, operator_client
from privatevault.settings import Settings

DSN = {"PRIVATEVAULT_LEDGER_DSN": "postgresql://x"}


def test_the_chart_settings_log_in_through_kubernetes_auth() -> None:
    settings = Settings.from_env(
        DSN
        | {
            "PRIVATEVAULT_VAULT_ADDR": "https://openbao:8200",
            "PRIVATEVAULT_VAULT_AUTH_ROLE": "privatevault-operator",
            "PRIVATEVAULT_VAULT_AUTH_MOUNT": "k8s-ops",
            "PRIVATEVAULT_VAULT_JWT_FILE": "/var/run/secrets/privatevault/vault/token",
            "PRIVATEVAULT_VAULT_CA_FILE": "/etc/vault/ca.crt",
        }
    )
    assert _vault_login(settings) == KubernetesLogin(
        role="privatevault-operator", mount="k8s-ops", jwt_file=Path("/var/run/secrets/privatevault/vault/token")
    )
    assert settings.vault_ca_file == Path("/etc/vault/ca.crt")


def test_defaults_are_the_pods_own_token_at_the_kubernetes_mount() -> None:
    settings = Settings.from_env(DSN | {"PRIVATEVAULT_VAULT_AUTH_ROLE": "r"})
    assert settings.vault_auth_mount == "kubernetes"
    assert settings.vault_jwt_file == Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


def test_a_token_file_wins_for_the_demo(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s.demo\n")
    settings = Settings.from_env(
        DSN | {"PRIVATEVAULT_VAULT_TOKEN_FILE": str(token), "PRIVATEVAULT_VAULT_AUTH_ROLE": "ignored"}
    )
    assert _vault_login(settings) is None
    assert operator_client("http://127.0.0.1:1", token_file=token, login=None).token == "s.demo"


def test_vault_without_a_way_to_log_in_stops_the_start() -> None:
    with pytest.raises(KmsError, match="PRIVATEVAULT_VAULT_AUTH_ROLE"):
        operator_client("http://127.0.0.1:1", token_file=None, login=None)


def test_an_unreadable_service_account_token_is_a_kms_error(tmp_path: Path) -> None:
    login = KubernetesLogin(role="r", jwt_file=tmp_path / "missing")
    client = operator_client("http://127.0.0.1:1", token_file=None, login=login)
    with pytest.raises(KmsError, match="cannot read the ServiceAccount token"):
        client.read("sys/mounts")
