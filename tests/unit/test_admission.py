"""The admission webhook's wiring without a cluster: registered only when enabled, one handler per
gated kind with failurePolicy Ignore and sideEffects NoneOnDryRun; a request records its user once,
a dry run nothing, and a ledger outage lets the request through unrecorded; the settings and the
generated serving certificate (verified against its CA, kept while it fits, renewed otherwise)."""

from __future__ import annotations

import asyncio
import datetime
import logging
import ssl
from pathlib import Path
from typing import Any

import kopf
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from privatevault import servingcert
from privatevault.handlers import admission, registry
from privatevault.quorum import changes
from privatevault.reconcile import requesters
from privatevault.settings import Settings, WebhookSettings
from tests import builders

from .test_handlers import FakeApp

LOG = logging.getLogger("test")


def enabled_app(tmp_path: Path) -> FakeApp:
    settings = Settings(ledger_dsn="postgresql://unused", state_dir=tmp_path, webhook=WebhookSettings(enabled=True))
    return FakeApp(settings=settings)


def webhooks(app: FakeApp) -> dict[str, Any]:
    return {h.id: h for h in registry(app)._webhooks.get_all_handlers()}  # type: ignore[arg-type]


def test_no_webhook_unless_enabled() -> None:
    assert webhooks(FakeApp()) == {}


def test_one_webhook_per_gated_kind_that_never_fails_a_request(tmp_path: Path) -> None:
    hooks = webhooks(enabled_app(tmp_path))
    assert set(hooks) == {f"requester-{kind.lower()}" for kind in requesters.GATED}
    for kind, operations in requesters.GATED.items():
        hook = hooks[f"requester-{kind.lower()}"]
        assert (hook.operations, hook.side_effects, hook.ignore_failures) == (list(operations), True, True)


def review(app: FakeApp, *, uid: str, dryrun: bool = False, **kwargs: Any) -> None:
    hook = webhooks(app)["requester-tenant"]

    async def serve() -> None:
        token = admission.REQUEST_UID.set(uid)
        try:
            await hook.fn(dryrun=dryrun, logger=LOG, **kwargs)
        finally:
            admission.REQUEST_UID.reset(token)

    asyncio.run(serve())


TENANT = builders.tenant("acme", uid="uid-acme")
ALICE = {"username": "alice", "uid": "u-1", "groups": ["system:authenticated"]}


def test_a_delete_records_its_requester_once_and_a_dry_run_nothing(tmp_path: Path) -> None:
    app = enabled_app(tmp_path)
    review(app, uid="req-0", dryrun=True, operation="DELETE", userinfo=ALICE, old=TENANT, new=None)
    assert app.ledger.records == []
    review(app, uid="req-1", operation="DELETE", userinfo=ALICE, old=TENANT, new=None)
    review(app, uid="req-1", operation="DELETE", userinfo=ALICE, old=TENANT, new=None)  # the API server retried
    assert len(app.ledger.records) == 1
    change = changes.deletion(TENANT)
    assert app.ledger.records[0].idempotency_key == f"tenant/uid-acme/request-gated-action/{change.digest}/req-1"
    assert requesters.requester(app.ledger, change).users == {"alice"}


def test_a_ledger_outage_lets_the_request_through_unrecorded(tmp_path: Path, caplog: Any) -> None:
    app = enabled_app(tmp_path)
    app.ledger.down = True
    review(app, uid="req-1", operation="DELETE", userinfo=ALICE, old=TENANT, new=None)  # no exception: allowed
    assert "was not recorded" in caplog.text


def test_the_registration_is_recorded_once_before_kopf_writes_it(tmp_path: Path) -> None:
    app = enabled_app(tmp_path)
    before_register = admission.registration(app)  # type: ignore[arg-type]
    config: Any = {"url": "https://127.0.0.1:9443", "caBundle": "Y2E="}
    asyncio.run(before_register(config))
    asyncio.run(before_register(config))  # the operator restarted with the same certificate and port
    (event,) = app.ledger.events
    assert (event.action, event.resource.kind, event.resource.name) == (
        "register-admission-webhook",
        "ValidatingWebhookConfiguration",
        "validating.privatevault.io",
    )
    assert event.details["url"] == "https://127.0.0.1:9443"
    assert event.details["webhooks"] == [f"requester-{kind.lower()}" for kind in requesters.GATED]


def test_webhook_settings_from_the_environment(tmp_path: Path) -> None:
    env = {
        "PRIVATEVAULT_LEDGER_DSN": "postgresql://x",
        "PRIVATEVAULT_STATE_DIR": str(tmp_path),
        "PRIVATEVAULT_WEBHOOK_ENABLED": "true",
        "PRIVATEVAULT_WEBHOOK_ADDR": "0.0.0.0",  # noqa: S104 - read, not bound
        "PRIVATEVAULT_WEBHOOK_PORT": "8443",
        "PRIVATEVAULT_WEBHOOK_CONFIGURATION": "validating.test.privatevault.io",
    }
    settings = Settings.from_env(env)
    hook = settings.webhook
    assert (hook.enabled, hook.port, hook.advertised_host, settings.state_dir) == (True, 8443, "127.0.0.1", tmp_path)
    assert hook.configuration == "validating.test.privatevault.io"
    assert not Settings.from_env({"PRIVATEVAULT_LEDGER_DSN": "postgresql://x"}).webhook.enabled


def test_the_generated_certificate_verifies_for_its_host_and_is_kept_while_it_fits(tmp_path: Path) -> None:
    files = servingcert.ensure(tmp_path / "webhook", "127.0.0.1")
    assert files.key.stat().st_mode & 0o777 == 0o600
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(files.cert, files.key)  # the key matches the certificate
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
    cert.verify_directly_issued_by(ca)
    assert servingcert.ensure(tmp_path / "webhook", "127.0.0.1") == files
    assert files.cert.read_bytes() == cert.public_bytes(serialization.Encoding.PEM)
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=340)
    servingcert.ensure(tmp_path / "webhook", "127.0.0.1", now=later)
    assert files.cert.read_bytes() != cert.public_bytes(serialization.Encoding.PEM)
    servingcert.ensure(tmp_path / "webhook", "webhook.example")
    renewed = x509.load_pem_x509_certificate(files.cert.read_bytes())
    names = renewed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["webhook.example"]


def test_a_service_reference_replaces_the_url() -> None:
    base = kopf.WebhookClientConfig(url="https://pv.privatevault-system.svc:9443", caBundle="Q0E=")
    config = admission.by_service(base, "privatevault-system/pv", 9443)
    # No path: kopf appends "/<handler id>" to service.path as it does to the URL.
    assert config == {"service": {"namespace": "privatevault-system", "name": "pv", "port": 9443}, "caBundle": "Q0E="}
    prefixed = admission.by_service(kopf.WebhookClientConfig(url="https://h:9443/hooks/"), "ns/pv", None)
    assert prefixed == {"service": {"namespace": "ns", "name": "pv", "path": "/hooks"}}
    with pytest.raises(ValueError, match="namespace/name"):
        admission.by_service(base, "pv", 9443)
