"""The operator's own identity on the bench, so that the API server counts its requests apart.

The bench's kubeconfig is its admin, in group ``system:masters``. ``apiserver_request_total`` has no
user label, and everything ``system:masters`` sends is counted under the one ``exempt`` flow schema
together with the API server's own loopback client and the bench's kubectl. So the operator gets a
client certificate of its own from the cluster's CA (user ``privatevault-operator``, no group),
bound to ``cluster-admin`` (the project has no least-privilege role for it yet), and a FlowSchema
that matches that user before any default one does. The FlowSchema sends it to the ``exempt``
priority level, as ``system:masters`` would be: the operator is counted, never queued or slowed.

A certificate rather than a ServiceAccount token: given a token kubeconfig the operator's kopf
side connects anonymously (``Cluster.credentials`` looks for the token under
``api_key["authorization"]``; kubernetes-client 37 keeps it under ``"BearerToken"``) and the
operator stops at its first watch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from privatevault.testbench.controlplane import ControlPlane
from privatevault.testbench.kubeconfig import write_kubeconfig
from tests.support import Kubectl, wait_for_condition

USER = "privatevault-operator"
FLOW_SCHEMA = "pv-bench-operator"
# Matched after the defaults `exempt` (1) and `probes` (2), before all the others (100 and above).
PRECEDENCE = 50


def _flow_schema() -> dict[str, Any]:
    everything = {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"], "clusterScope": True, "namespaces": ["*"]}
    return {
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
        "kind": "FlowSchema",
        "metadata": {"name": FLOW_SCHEMA},
        "spec": {
            "matchingPrecedence": PRECEDENCE,
            "priorityLevelConfiguration": {"name": "exempt"},
            "rules": [
                {
                    "subjects": [{"kind": "User", "user": {"name": USER}}],
                    "resourceRules": [everything],
                    "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                }
            ],
        },
    }


def operator_kubeconfig(kubectl: Kubectl, control_plane: ControlPlane, directory: Path) -> Path:
    """Give the operator its identity and flow schema; return a kubeconfig for it, in ``directory``.

    Returns once the API server has taken the flow schema in (it has set ``Dangling``).
    """
    cert, key = directory / "operator.crt", directory / "operator.key"
    control_plane.pki.issue_client(USER, cert, key)
    kubectl.run("create", "clusterrolebinding", FLOW_SCHEMA, "--clusterrole=cluster-admin", f"--user={USER}")
    kubectl.apply(_flow_schema())
    wait_for_condition(kubectl, "flowschema", FLOW_SCHEMA, "Dangling", status="False")
    return write_kubeconfig(
        directory / "operator.kubeconfig",
        server=control_plane.server,
        ca_cert=control_plane.pki.ca_cert,
        client_cert=cert,
        client_key=key,
        user=USER,
    )
