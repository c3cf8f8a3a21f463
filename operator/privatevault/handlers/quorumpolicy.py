"""kopf wiring of QuorumPolicy: the shared handlers of ``wiring`` (see ``reconcile.quorumpolicy``)."""

from __future__ import annotations

import kopf

from privatevault.api.v1alpha1 import QuorumPolicy
from privatevault.api.v1alpha1.quorumpolicy import QuorumPolicyStatus
from privatevault.app import App
from privatevault.handlers import wiring
from privatevault.reconcile import quorumpolicy as decisions
from privatevault.reconcile import status


def kind(app: App) -> wiring.Kind[QuorumPolicy]:
    def work(policy: QuorumPolicy, context: wiring.Context) -> status.Done:
        try:
            return decisions.reconcile(
                policy, context.body, cluster=app.cluster, ledger=app.ledger, actor=app.settings.actor, now=context.now
            )
        finally:
            # What is in force may have moved: the compliance facts read it from the ledger again.
            app.gates.forget_policy(str(policy.metadata["name"]))

    return wiring.Kind(
        resource=QuorumPolicy,
        status_model=QuorumPolicyStatus,
        work=work,
        begin_message=decisions.BEGIN_MESSAGE,
        facts=decisions.facts,
    )


def register(registry: kopf.OperatorRegistry, app: App) -> None:
    wiring.register(registry, app, kind(app), resync=app.settings.drift_interval)
