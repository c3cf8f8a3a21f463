"""The objects a Tenant owns: its namespaces and, in each, a quota, limits and network policy.

Every child carries an owner reference to the Tenant so that deleting the Tenant lets the
garbage collector remove them, and the tenant label so that the operator (and people) can find
them. Namespaces come first: the namespaced children need them to exist.
"""

from __future__ import annotations

from typing import Any

from privatevault.api.v1alpha1 import API_VERSION, Tenant

from . import labels

QUOTA_NAME = "privatevault-quota"
LIMITS_NAME = "privatevault-limits"
NETWORK_POLICY_NAME = "privatevault-isolation"


def owner_reference(tenant: Tenant) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Tenant",
        "name": tenant.metadata["name"],
        "uid": tenant.metadata["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _labels(tenant: Tenant) -> dict[str, str]:
    return {
        labels.TENANT: str(tenant.metadata["name"]),
        labels.REGION: tenant.spec.region,
        labels.MANAGED_BY: labels.MANAGER,
    }


def _metadata(tenant: Tenant, name: str, namespace: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": _labels(tenant), "ownerReferences": [owner_reference(tenant)]}
    if namespace is not None:
        metadata["namespace"] = namespace
    return metadata


def _quantities(values: dict[str, int | str]) -> dict[str, str]:
    return {key: str(value) for key, value in sorted(values.items())}


OWNERS_BINDING_NAME = "privatevault-owners"


def namespace(tenant: Tenant, name: str, mcs_level: str) -> dict[str, Any]:
    metadata = _metadata(tenant, name)
    metadata["labels"] |= {labels.LOCALE: tenant.spec.locale, **labels.POD_SECURITY}
    metadata["annotations"] = {labels.MCS_LEVEL: mcs_level, labels.OPENSHIFT_MCS: mcs_level}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}


def owners_binding(tenant: Tenant, namespace_name: str) -> dict[str, Any]:
    """The tenant's owners get the built-in ``admin`` role in this namespace, and nothing elsewhere."""
    subjects = []
    for owner in tenant.spec.owners:
        if owner.kind == "ServiceAccount":
            subjects.append({"kind": "ServiceAccount", "name": owner.name, "namespace": owner.namespace})
        else:
            subjects.append({"kind": owner.kind, "name": owner.name, "apiGroup": "rbac.authorization.k8s.io"})
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _metadata(tenant, OWNERS_BINDING_NAME, namespace_name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
        "subjects": subjects,
    }


def resource_quota(tenant: Tenant, namespace_name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": _metadata(tenant, QUOTA_NAME, namespace_name),
        "spec": {"hard": _quantities(tenant.spec.quota.hard)},
    }


def limit_range(tenant: Tenant, namespace_name: str) -> dict[str, Any]:
    limits = tenant.spec.limits
    item: dict[str, Any] = {"type": "Container"}
    for key, values in (
        ("default", limits.default),
        ("defaultRequest", limits.default_request),
        ("max", limits.max),
        ("min", limits.min),
    ):
        if values:
            item[key] = _quantities(values)
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": _metadata(tenant, LIMITS_NAME, namespace_name),
        "spec": {"limits": [item]},
    }


def network_policy(tenant: Tenant, namespace_name: str) -> dict[str, Any]:
    """Deny everything except traffic within the tenant and what the spec allows explicitly."""
    same_tenant = {"namespaceSelector": {"matchLabels": {labels.TENANT: str(tenant.metadata["name"])}}}
    network = tenant.spec.network
    ingress_from: list[dict[str, Any]] = [same_tenant]
    if network.allow_from_namespaces:
        ingress_from.append(
            {
                "namespaceSelector": {
                    "matchExpressions": [
                        {
                            "key": labels.NAMESPACE_NAME,
                            "operator": "In",
                            "values": sorted(network.allow_from_namespaces),
                        }
                    ]
                }
            }
        )
    egress: list[dict[str, Any]] = [{"to": [same_tenant]}]
    if network.allow_dns:
        egress.append(
            {
                "to": [
                    {
                        "namespaceSelector": {"matchLabels": {labels.NAMESPACE_NAME: "kube-system"}},
                        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                    }
                ],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
            }
        )
    if network.allow_egress_cidrs:
        egress.append({"to": [{"ipBlock": {"cidr": cidr}} for cidr in sorted(network.allow_egress_cidrs)]})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(tenant, NETWORK_POLICY_NAME, namespace_name),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": ingress_from}],
            "egress": egress,
        },
    }


def children(tenant: Tenant, mcs_level: str) -> list[dict[str, Any]]:
    """Every object the tenant should own, namespaces first."""
    names = tenant.namespace_names()
    out = [namespace(tenant, name, mcs_level) for name in names]
    for name in names:
        out += [
            resource_quota(tenant, name),
            limit_range(tenant, name),
            network_policy(tenant, name),
            owners_binding(tenant, name),
        ]
    return out
