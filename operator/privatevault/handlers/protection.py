"""kopf handlers for ProtectionPolicy: create, update, resume and a timer share one reconcile.

The timer is what notices workloads labelled (or unlabelled) after the policy was applied and
rotations falling due; its interval is ``PRIVATEVAULT_PROTECTION_INTERVAL``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf

from privatevault.api.v1alpha1 import GROUP, VERSION, ProtectionPolicy
from privatevault.api.v1alpha1.protectionpolicy import ProtectionPolicyStatus
from privatevault.errors import PrivateVaultError, SpecError, TransientError
from privatevault.handlers.runtime import Runtime
from privatevault.handlers.status import write_status
from privatevault.reconcile import conditions
from privatevault.reconcile import protection as decisions
from privatevault.reconcile.ports import ProtectionPorts
from privatevault.reconcile.protection_policy import effective, quantum_safe, security_level


def _status(
    policy: ProtectionPolicy,
    *,
    result: decisions.Result | None,
    error: Exception | None,
    now: datetime,
    weakening: tuple[bool, str] | None = None,
) -> ProtectionPolicyStatus:
    previous = policy.status or ProtectionPolicyStatus()
    generation = policy.metadata.get("generation")
    if weakening is not None:
        weaker, reason = weakening
        previous = previous.model_copy(
            update={
                "conditions": conditions.set_condition(
                    previous.conditions,
                    type="Weakened",
                    status="True" if weaker else "False",
                    reason="Weakening" if weaker else "NotWeakened",
                    message=reason,
                    generation=generation,
                    now=now,
                )
            }
        )
    algorithms = effective(policy.spec)
    facts = {"security_level": security_level(algorithms), "quantum_safe": quantum_safe(algorithms)}
    if result is not None:
        count = len(result.workloads)
        return ProtectionPolicyStatus(
            observed_generation=generation,
            conditions=conditions.ready(
                previous.conditions,
                generation=generation,
                now=now,
                message=f"{count} workload(s) protected with {algorithms.kem}",
            ),
            workloads=count,
            **facts,
        )
    if isinstance(error, TransientError):
        return previous.model_copy(
            update={
                "conditions": conditions.progressing(
                    previous.conditions, reason=type(error).__name__, message=str(error), generation=generation, now=now
                )
            }
        )
    return previous.model_copy(
        update={
            "observed_generation": generation,
            "conditions": conditions.stalled(
                previous.conditions,
                reason=getattr(error, "reason", "ReconcileFailed"),
                message=str(error),
                generation=generation,
                now=now,
            ),
        }
        | facts
    )


def register(registry: kopf.OperatorRegistry, runtime: Runtime) -> None:
    policies = (GROUP, VERSION, "protectionpolicies")
    settings = runtime.settings

    def reconcile(body: kopf.Body, logger: kopf.Logger, old: dict[str, Any] | None = None) -> None:
        assert runtime.ledger is not None and runtime.providers is not None, "the operator has not started"
        cluster = runtime.connect()
        policy = ProtectionPolicy.model_validate(dict(body))
        now = datetime.now(UTC)
        ports = ProtectionPorts(cluster=cluster, ledger=runtime.ledger, keys=runtime.providers)
        with runtime.lock(str(policy.metadata["uid"])):
            try:
                weakening = decisions.weakening(policy, old, ports=ports, actor=settings.actor)
                if weakening is not None and weakening[0]:
                    logger.warning("policy weakened: %s", weakening[1])
                result = decisions.reconcile(
                    policy, ports=ports, actor=settings.actor, kem_name=effective(policy.spec).kem, now=now
                )
                status = _status(policy, result=result, error=None, now=now, weakening=weakening)
            except (TransientError, SpecError) as exc:
                status = _status(policy, result=None, error=exc, now=now)
                write_status(cluster, "ProtectionPolicy", str(policy.metadata["name"]), policy.status, status)
                if isinstance(exc, SpecError):
                    logger.warning("policy stalled: %s (%s)", exc, exc.reason)
                    return
                raise kopf.TemporaryError(str(exc), delay=settings.retry_delay) from exc
            except PrivateVaultError as exc:
                raise kopf.TemporaryError(str(exc), delay=settings.retry_delay) from exc
            if result.changed:
                logger.info(
                    "protection reconciled: %d change(s), %d workload(s)", result.changed, len(result.workloads)
                )
            if status != policy.status:
                write_status(cluster, "ProtectionPolicy", str(policy.metadata["name"]), policy.status, status)

    @kopf.on.resume(*policies, registry=registry, id="resume")
    @kopf.on.create(*policies, registry=registry, id="create")
    def on_start(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
        reconcile(body, logger)

    @kopf.on.update(*policies, registry=registry, id="update", field="spec")
    def on_update(body: kopf.Body, old: Any, logger: kopf.Logger, **_: Any) -> None:
        reconcile(body, logger, old=dict(old) if old else None)

    @kopf.timer(
        *policies,
        registry=registry,
        id="workloads",
        interval=settings.protection_interval,
        initial_delay=settings.protection_interval,
    )
    def on_timer(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
        reconcile(body, logger)
