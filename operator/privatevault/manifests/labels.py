"""Label and annotation keys the operator writes, in one place."""

from __future__ import annotations

TENANT = "privatevault.io/tenant"
REGION = "privatevault.io/region"
LOCALE = "privatevault.io/locale"
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "privatevault"
NAMESPACE_NAME = "kubernetes.io/metadata.name"

POD_SECURITY = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/audit": "restricted",
    "pod-security.kubernetes.io/warn": "restricted",
}

MCS_LEVEL = "privatevault.io/mcs-level"
#: The annotation OpenShift's SCCs read the namespace's MCS level from.
OPENSHIFT_MCS = "openshift.io/sa.scc.mcs"
