"""kopf wiring of ProtectionPolicy: the shared handlers of ``wiring``; spec updates are checked
for weakening (recorded in the ledger and shown as the ``Weakened`` condition), and the finalizer
holds the deletion of a gated policy until approved (``protectionpolicy_gate.deletion``).

The resync timer is what notices workloads labelled (or unlabelled) after the policy was applied
and rotations falling due; its interval is ``PRIVATEVAULT_PROTECTION_INTERVAL``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import kopf
from pydantic import ValidationError

from privatevault.api.v1alpha1 import API_VERSION, ProtectionPolicy
from privatevault.api.v1alpha1.protectionpolicy import ProtectionPolicyStatus
from privatevault.app import App
from privatevault.errors import PrivateVaultError
from privatevault.handlers import complianceframework as compliance
from privatevault.handlers import wiring
from privatevault.reconcile import protectionpolicy as decisions
from privatevault.reconcile import protectionpolicy_gate as gate
from privatevault.reconcile import quorum, status
from privatevault.reconcile.strength import effective


def kind(app: App) -> wiring.Kind[ProtectionPolicy]:
    def work(policy: ProtectionPolicy, context: wiring.Context) -> status.Done:
        ports, actor = app.protectionpolicy_ports(), app.settings.actor
        weakened = decisions.weakening(policy, dict(context.old) if context.old else None, ports=ports, actor=actor)
        if weakened is not None and weakened[0]:
            context.logger.warning("policy weakened: %s", weakened[1])
        force = gate.in_force(policy, context.body, ports=ports, actor=actor, now=context.now)
        acting = policy.model_copy(update={"spec": force.spec})
        result = decisions.reconcile(
            acting, ports=ports, actor=actor, kem_name=effective(force.spec).kem, now=context.now
        )
        if result.changed:
            context.logger.info(
                "protection reconciled: %d change(s), %d workload(s)", result.changed, len(result.workloads)
            )
        done = decisions.done(acting, result, weakened)
        done = replace(done, facts={**done.facts, "in_force_generation": force.generation})
        gates = [force.gate] if force.gate is not None else []
        app.metrics.held("ProtectionPolicy", str(policy.metadata["name"]), [quorum.decided(g) for g in gates])
        if force.gate is not None:
            context.logger.info("weakening held: %s", force.gate.held.decision.message)
        return quorum.with_gates(done, [force.gate] if force.gate is not None else [])

    def then(body: Mapping[str, Any], logger: Any) -> None:
        # Its mode, algorithms and readiness are what the workload checks read: its tenants (those
        # naming it) are re-evaluated.
        name = body.get("metadata", {}).get("name")
        tenants = app.cluster.list(API_VERSION, "Tenant")
        compliance.tenants_changed(
            app,
            [t["metadata"]["name"] for t in tenants if (t.get("spec") or {}).get("protectionPolicyRef") == name],
            logger,
        )

    return wiring.Kind(
        resource=ProtectionPolicy,
        status_model=ProtectionPolicyStatus,
        work=work,
        begin_message=decisions.BEGIN_MESSAGE,
        facts=decisions.facts,
        then=then,
        reads_previous=True,  # the weakening check compares with the previous spec
    )


def register(registry: kopf.OperatorRegistry, app: App) -> None:
    wiring.register(registry, app, kind(app), resync=app.settings.protection_interval)
    _deletion(registry, app)
    _bypass(registry, app)


def _bypass(registry: kopf.OperatorRegistry, app: App) -> None:
    """A gated policy gone without an approved deletion (its finalizer stripped by hand) is recorded and raised."""
    wiring.register_bypass(
        registry,
        app,
        ProtectionPolicy,
        lambda body: gate.bypassed(body, ports=app.protectionpolicy_ports(), actor=app.settings.actor),
    )


def _deletion(registry: kopf.OperatorRegistry, app: App) -> None:
    """The finalizer: a gated policy goes only once its deletion is approved (``gate.deletion``)."""

    @kopf.on.delete(*wiring.resource_of(ProtectionPolicy), registry=registry, id="finalize")
    def on_delete(body: kopf.Body, logger: kopf.Logger, **kwargs: Any) -> None:
        app.cluster.bind(kwargs)
        name = str(body.get("metadata", {}).get("name"))
        try:
            held = gate.deletion(
                dict(body), ports=app.protectionpolicy_ports(), actor=app.settings.actor, now=app.clock()
            )
        except PrivateVaultError as exc:  # never let a deletion through on an error
            wiring.to_kopf(exc, retry_delay=app.settings.retry_delay, logger=logger, what="deletion")
            raise kopf.TemporaryError(f"deletion waits: {exc}", delay=app.settings.retry_delay) from exc
        if held is not None:
            app.metrics.held("ProtectionPolicy", name, [quorum.decided(held)])
        if held is not None and not held.approved:
            _held(body, held)
        app.metrics.forget("ProtectionPolicy", name)
        logger.info("protection policy deleted (%s)", "approved" if held is not None else "not gated")

    def _held(body: kopf.Body, held: quorum.Gate) -> None:
        """The status says what the deletion waits for (a spec the operator refuses has no model: the log does)."""
        error = held.error()
        try:
            policy = ProtectionPolicy.model_validate(dict(body))
        except ValidationError:
            policy = None
        if policy is not None:
            facts = {"pending": [held.held.pending]}
            after = status.failed(policy, ProtectionPolicyStatus, error, now=app.clock(), facts=facts)
            wiring.write_status(app, "ProtectionPolicy", str(policy.metadata["name"]), policy.status, after)
        raise kopf.TemporaryError(f"deletion waits: {error}", delay=app.settings.retry_delay)
