"""Manifests of every PrivateVault kind for every test tier, built from a few keyword options.

One builder per kind, in the manner of cert-manager's ``test/unit/gen``: a test names only what it
is about and every other field keeps a valid default, so the tests read as their intent and a
change to the API is made here once rather than in each test file. The builders produce plain
data, the dicts that ``kubectl apply`` sends and that ``Model.model_validate`` reads; they know
nothing of the operator beyond the API's wire format.

Conventions shared by every builder:

- options are keyword-only, in snake_case, each named after the spec field it sets (``quota`` and
  ``kms`` take the one thing they hold: the hard limits and the provider); an option left at
  ``None`` leaves its field out, so the API server's default applies;
- values given as data are in wire form, with camelCase keys, as in a manifest file;
- ``spec`` is merged over the options verbatim, ``None`` included, for tests that hold a spec as
  data (a table of cases) or that need a field no option names;
- ``uid``, ``generation`` and ``status`` are for unit tests, which hand the object straight to a
  model; an object sent to a real API server gets them from it, so tests of other tiers leave
  them out;
- everything given is copied: a test that changes one manifest never changes another.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

API_VERSION = "privatevault.io/v1alpha1"

#: Public keys of the sizes the schema asks for; tests that verify signatures pass real keys. The
#: Ed25519 one is the key of the all-zero seed: the all-zero key is of small order, which the
#: QuorumPolicy controller reports (no signature counts under it). The ML-DSA-65 one is 1952 zero bytes.
PLACEHOLDER_KEY = "O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik="
PLACEHOLDER_ML_DSA_65_KEY = "A" * 2603 + "="

Manifest = dict[str, Any]


def _fields(**fields: Any) -> dict[str, Any]:
    """The given fields, copied, without those left at ``None``."""
    return {key: copy.deepcopy(value) for key, value in fields.items() if value is not None}


def _resource(
    kind: str,
    name: str,
    spec: dict[str, Any],
    *,
    overrides: Mapping[str, Any] | None,
    labels: Mapping[str, str] | None,
    annotations: Mapping[str, str] | None,
    uid: str | None,
    generation: int | None,
    status: Mapping[str, Any] | None,
) -> Manifest:
    metadata = {"name": name} | _fields(labels=labels, annotations=annotations, uid=uid, generation=generation)
    manifest: Manifest = {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": metadata,
        "spec": spec | copy.deepcopy(dict(overrides or {})),
    }
    if status is not None:
        manifest["status"] = copy.deepcopy(dict(status))
    return manifest


# -- Tenant ---------------------------------------------------------------------------------------


def user(name: str) -> dict[str, Any]:
    """A User owner of a tenant."""
    return {"kind": "User", "name": name}


def group(name: str) -> dict[str, Any]:
    """A Group owner of a tenant."""
    return {"kind": "Group", "name": name}


def service_account(name: str, namespace: str) -> dict[str, Any]:
    """A ServiceAccount owner of a tenant, in the namespace it lives in."""
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def tenant(
    name: str,
    *,
    owners: Sequence[Mapping[str, Any]] | None = None,
    region: str = "eu-west-1",
    locale: str | None = None,
    security_label: Mapping[str, Any] | None = None,
    namespaces: Sequence[str] | None = None,
    quota: Mapping[str, Any] | None = None,
    limits: Mapping[str, Any] | None = None,
    network: Mapping[str, Any] | None = None,
    protection_policy_ref: str | None = None,
    quorum_policy_ref: str | None = None,
    compliance_framework_refs: Sequence[str] | None = None,
    kms: str | None = None,
    deletion_policy: str | None = None,
    mcs_level: str | None = None,
    spec: Mapping[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    uid: str | None = None,
    generation: int | None = None,
    status: Mapping[str, Any] | None = None,
) -> Manifest:
    """A Tenant owned by the group ``<name>-admins`` in eu-west-1, unless told otherwise.

    ``quota`` is the ResourceQuota's hard limits (``{"pods": 10}``), ``kms`` the key provider
    (``"vault"``); ``limits``, ``network`` and ``security_label`` are given in wire form.
    """
    fields = _fields(
        owners=[dict(owner) for owner in owners] if owners is not None else [group(f"{name}-admins")],
        region=region,
        locale=locale,
        securityLabel=security_label,
        namespaces=list(namespaces) if namespaces is not None else None,
        quota={"hard": dict(quota)} if quota is not None else None,
        limits=limits,
        network=network,
        protectionPolicyRef=protection_policy_ref,
        quorumPolicyRef=quorum_policy_ref,
        complianceFrameworkRefs=list(compliance_framework_refs) if compliance_framework_refs is not None else None,
        kms={"provider": kms} if kms is not None else None,
        deletionPolicy=deletion_policy,
        mcsLevel=mcs_level,
    )
    return _resource(
        "Tenant",
        name,
        fields,
        overrides=spec,
        labels=labels,
        annotations=annotations,
        uid=uid,
        generation=generation,
        status=status,
    )


# -- ProtectionPolicy ------------------------------------------------------------------------------


def protection_policy(
    name: str,
    *,
    profile: str | None = None,
    mode: str | None = None,
    kem: str | None = None,
    signature: str | None = None,
    symmetric: str | None = None,
    rotation_interval: str | None = None,
    retain_versions: int | None = None,
    workload_selector: Mapping[str, str] | None = None,
    selinux_type: str | None = None,
    spec: Mapping[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    uid: str | None = None,
    generation: int | None = None,
    status: Mapping[str, Any] | None = None,
) -> Manifest:
    """A ProtectionPolicy; with no option its spec is empty, which the API reads as mode Hybrid."""
    fields = _fields(
        profile=profile,
        mode=mode,
        kem=kem,
        signature=signature,
        symmetric=symmetric,
        rotationInterval=rotation_interval,
        retainVersions=retain_versions,
        workloadSelector=workload_selector,
        selinuxType=selinux_type,
    )
    return _resource(
        "ProtectionPolicy",
        name,
        fields,
        overrides=spec,
        labels=labels,
        annotations=annotations,
        uid=uid,
        generation=generation,
        status=status,
    )


# -- QuorumPolicy ----------------------------------------------------------------------------------


def approver(
    name: str,
    *,
    ed25519: str | None = PLACEHOLDER_KEY,
    ml_dsa65: str | None = None,
    roles: Sequence[str] | None = None,
    region: str | None = None,
    users: Sequence[str] | None = None,
) -> dict[str, Any]:
    """An approver of a QuorumPolicy with an Ed25519 key (a placeholder unless given).

    ``users`` are the Kubernetes user names the approver acts as (a request by one is their own).
    Tests that verify signatures pass real keys (``tests.quorum_keys``).
    """
    return _fields(
        name=name,
        roles=list(roles) if roles is not None else None,
        region=region,
        users=list(users) if users is not None else None,
        publicKeys=_fields(ed25519=ed25519, mlDsa65=ml_dsa65),
    )


def rule(
    action: str = "DeleteTenant",
    *,
    min_approvals: int = 1,
    required_roles: Sequence[str] | None = None,
    min_distinct_regions: int | None = None,
    allowed_regions: Sequence[str] | None = None,
    allow_self_approval: bool | None = None,
    signature_mode: str | None = None,
    ttl: str | None = None,
) -> dict[str, Any]:
    """A QuorumPolicy rule: how many approvals ``action`` needs (one unless told otherwise)."""
    return _fields(
        action=action,
        minApprovals=min_approvals,
        requiredRoles=list(required_roles) if required_roles is not None else None,
        minDistinctRegions=min_distinct_regions,
        allowedRegions=list(allowed_regions) if allowed_regions is not None else None,
        allowSelfApproval=allow_self_approval,
        signatureMode=signature_mode,
        ttl=ttl,
    )


def quorum_policy(
    name: str,
    *,
    approvers: Sequence[Mapping[str, Any]] | None = None,
    rules: Sequence[Mapping[str, Any]] | None = None,
    spec: Mapping[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    uid: str | None = None,
    generation: int | None = None,
    status: Mapping[str, Any] | None = None,
) -> Manifest:
    """A QuorumPolicy; by default one approver, ``approver-0``, whose approval deleting a tenant needs."""
    fields = _fields(
        approvers=[dict(a) for a in approvers] if approvers is not None else [approver("approver-0")],
        rules=[dict(r) for r in rules] if rules is not None else [rule()],
    )
    return _resource(
        "QuorumPolicy",
        name,
        fields,
        overrides=spec,
        labels=labels,
        annotations=annotations,
        uid=uid,
        generation=generation,
        status=status,
    )


# -- Approval --------------------------------------------------------------------------------------


def envelope_signature(keyid: str = "ed25519:" + "0" * 64, sig: str = "c2ln") -> dict[str, Any]:
    """One DSSE signature (by default a placeholder: base64 of ``sig``)."""
    return {"keyid": keyid, "sig": sig}


def approval(
    name: str,
    *,
    verb: str = "DeleteTenant",
    target_kind: str = "Tenant",
    target: str = "acme",
    target_uid: str = "uid-acme",
    target_generation: int = 1,
    digest: str = "sha256:" + "0" * 64,
    approver: str = "approver-0",
    policy: str = "two-person",
    payload: str = "e30=",
    signatures: Sequence[Mapping[str, Any]] | None = None,
    envelope: Mapping[str, Any] | None = None,
    expires: str = "2030-01-01T00:00:00Z",
    spec: Mapping[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    uid: str | None = None,
    generation: int | None = None,
    status: Mapping[str, Any] | None = None,
) -> Manifest:
    """An Approval by ``approver-0`` of deleting the tenant acme, with a placeholder envelope.

    ``target_kind``, ``target``, ``target_uid`` and ``target_generation`` name the object the
    approved action is on; ``envelope`` replaces the placeholder with a real one (see
    ``tests.quorum_keys``).
    """
    fields = _fields(
        policy=policy,
        approver=approver,
        action=_fields(
            verb=verb, kind=target_kind, name=target, uid=target_uid, generation=target_generation, digest=digest
        ),
        expires=expires,
        envelope=dict(envelope)
        if envelope is not None
        else {
            "payloadType": "application/vnd.in-toto+json",
            "payload": payload,
            "signatures": [dict(s) for s in signatures] if signatures is not None else [envelope_signature()],
        },
    )
    return _resource(
        "Approval",
        name,
        fields,
        overrides=spec,
        labels=labels,
        annotations=annotations,
        uid=uid,
        generation=generation,
        status=status,
    )


def pending_action(
    action: str = "DeleteTenant",
    *,
    policy: str = "two-person",
    policy_generation: int = 1,
    target_kind: str = "Tenant",
    target: str = "acme",
    target_uid: str = "uid-acme",
    target_generation: int = 3,
    digest: str = "sha256:" + "ab" * 32,
    state: str = "Pending",
    approvals: str = "0/2",
    message: str = "0/2 approvals; missing role security; missing role platform",
    requester: str | None = None,
) -> dict[str, Any]:
    """One entry of a gated object's ``status.pending``, as the API returns it: deleting acme, 0/2."""
    return _fields(
        action=action,
        policy=policy,
        policyGeneration=policy_generation,
        target={"kind": target_kind, "name": target, "uid": target_uid, "generation": target_generation},
        changeDigest=digest,
        state=state,
        approvals=approvals,
        message=message,
        requester=requester,
        signWith=f"pvctl approvals create {target_kind}/{target} --action {action}",
    )


# -- EvidenceExport --------------------------------------------------------------------------------


def evidence_export(
    name: str,
    *,
    tenants: Sequence[str] = ("acme",),
    start: str = "2026-01-01T00:00:00Z",
    end: str = "2026-02-01T00:00:00Z",
    include: Sequence[str] | None = None,
    destination: Mapping[str, Any] | None = None,
    signing: Sequence[str] | None = None,
    spec: Mapping[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    uid: str | None = None,
    generation: int | None = None,
    status: Mapping[str, Any] | None = None,
) -> Manifest:
    """An EvidenceExport of the tenant acme over January 2026; ``start`` and ``end`` bound the window."""
    fields = _fields(
        tenants=list(tenants),
        window={"from": start, "to": end},
        include=list(include) if include is not None else None,
        destination=destination,
        signing=list(signing) if signing is not None else None,
    )
    return _resource(
        "EvidenceExport",
        name,
        fields,
        overrides=spec,
        labels=labels,
        annotations=annotations,
        uid=uid,
        generation=generation,
        status=status,
    )


# -- ComplianceFramework ---------------------------------------------------------------------------


def compliance_check(name: str = "network-default-deny", **params: Any) -> dict[str, Any]:
    """One check of a control, with its parameters (free-form)."""
    return _fields(name=name, params=params or None)


def control(
    control_id: str = "CC6.1",
    title: str = "Logical access is restricted",
    *,
    severity: str | None = None,
    weight: int | None = None,
    checks: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A control of a ComplianceFramework, with one check unless told otherwise."""
    return _fields(
        id=control_id,
        title=title,
        severity=severity,
        weight=weight,
        checks=[dict(c) for c in checks] if checks is not None else [compliance_check()],
    )


def compliance_framework(
    name: str,
    *,
    framework: str = "SOC2",
    version: str = "2017",
    tenant_selector: Mapping[str, Any] | None = None,
    interval: str | None = None,
    controls: Sequence[Mapping[str, Any]] | None = None,
    exceptions: Sequence[Mapping[str, Any]] | None = None,
    attestations: Sequence[Mapping[str, Any]] | None = None,
    quorum_policy_ref: str | None = None,
    spec: Mapping[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    uid: str | None = None,
    generation: int | None = None,
    status: Mapping[str, Any] | None = None,
) -> Manifest:
    """A ComplianceFramework (SOC 2, one control) over every tenant; ``tenant_selector`` in wire form."""
    fields = _fields(
        framework=framework,
        version=version,
        tenantSelector=tenant_selector,
        interval=interval,
        controls=[dict(c) for c in controls] if controls is not None else [control()],
        exceptions=[dict(e) for e in exceptions] if exceptions is not None else None,
        attestations=[dict(a) for a in attestations] if attestations is not None else None,
        quorumPolicyRef=quorum_policy_ref,
    )
    return _resource(
        "ComplianceFramework",
        name,
        fields,
        overrides=spec,
        labels=labels,
        annotations=annotations,
        uid=uid,
        generation=generation,
        status=status,
    )


def deployment(
    name: str,
    namespace: str,
    *,
    labels: dict[str, str] | None = None,
    app: str | None = None,
    replicas: int = 1,
    service_account: str | None = None,
    run_as_user: int | None = None,
) -> dict[str, Any]:
    """A Deployment that Pod Security ``restricted`` admits (a workload a ProtectionPolicy selects)."""
    app = app or name
    security: dict[str, Any] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if run_as_user is not None:
        security["runAsUser"] = run_as_user
    pod: dict[str, Any] = {
        "containers": [{"name": "app", "image": "registry.invalid/app:1", "securityContext": security}]
    }
    if service_account is not None:
        pod = {"serviceAccountName": service_account, **pod}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {"app": app})},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": {"metadata": {"labels": {"app": app}}, "spec": pod},
        },
    }
