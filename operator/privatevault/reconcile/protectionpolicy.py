"""ProtectionPolicy reconcile: the selected workloads of the tenants that reference the policy get
keys and SELinux labels; workloads that leave the selector are given back as they were.

Every change is audited before it is made (key versions, pod template changes, releases), with
idempotency keys naming the workload's uid and the version or template it moves to, so a
retried reconcile writes no second record. Rotation is due when the newest version is older
than the policy's interval (computed from the version's own creation time, so it survives
operator restarts) or when the workload's ``privatevault.io/rotate`` annotation carries a value
not answered yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from privatevault.api.v1alpha1 import API_VERSION, ProtectionPolicy, Tenant
from privatevault.api.v1alpha1.protectionpolicy import ProtectionPolicySpec, duration_seconds
from privatevault.crypto.workload_keys import KeyVersion, new_version, secret_files, versions_of
from privatevault.errors import SpecError
from privatevault.ledger import ResourceRef
from privatevault.manifests import labels
from privatevault.manifests import protectionpolicy as manifests
from privatevault.reconcile import status, tenant_gate
from privatevault.reconcile.audit import Audit, ref
from privatevault.reconcile.ports import ProtectionPolicyPorts
from privatevault.reconcile.strength import effective, is_weakening, quantum_safe, security_level

KIND = "ProtectionPolicy"

WORKLOAD_KINDS = ("Deployment", "StatefulSet")


def selects(selector: dict[str, str], workload: dict[str, Any]) -> bool:
    """Label-selector matching; an empty selector selects every workload of the tenant (as in Kubernetes)."""
    found = workload["metadata"].get("labels") or {}
    return all(found.get(key) == value for key, value in selector.items())


@dataclass(frozen=True)
class Protected:
    namespace: str
    name: str
    kind: str
    version: int


@dataclass(frozen=True)
class Result:
    workloads: list[Protected]
    changed: int


@dataclass(frozen=True)
class Run:
    """One reconcile of one policy: the policy, what it reaches the world through, and its audit."""

    policy: ProtectionPolicy
    ports: ProtectionPolicyPorts
    audit: Audit

    def record(self, tenant: str, action: str, obj: dict[str, Any], change: str, details: dict[str, Any]) -> None:
        """A change to one object of ``tenant``; the change key starts with the object's uid."""
        self.audit.record(action, ref(obj), f"{obj['metadata'].get('uid')}/{change}", details, tenant=tenant)


def run_for(policy: ProtectionPolicy, ports: ProtectionPolicyPorts, actor: str) -> Run:
    audit = Audit(
        ports.ledger,
        actor,
        kind=KIND,
        uid=str(policy.metadata["uid"]),
        context={"policy": policy.metadata["name"], "policyGeneration": policy.metadata.get("generation")},
    )
    return Run(policy, ports, audit)


def _tenants(run: Run) -> list[Tenant]:
    """The tenants this policy protects: by their ref in force (a move to a weaker policy waits for
    its approval while this one keeps protecting), not by their spec."""
    out = []
    for raw in run.ports.cluster.list(API_VERSION, "Tenant"):
        tenant = Tenant.model_validate(raw)
        if not (tenant.status and tenant.status.mcs_level):
            continue
        if tenant_gate.protection_ref(run.ports.ledger, tenant) == run.policy.metadata["name"]:
            out.append(tenant)
    return out


def rotation_due(
    policy: ProtectionPolicy, versions: list[KeyVersion], *, kem_name: str, requested: str, answered: str, now: datetime
) -> str | None:
    """Why the workload needs a new key version now, or None."""
    if not versions:
        return "first key"
    if kem_name != versions[-1].kem:
        return f"the policy's KEM changed from {versions[-1].kem} to {kem_name}"
    if requested and requested != answered:
        return f"rotation requested ({requested})"
    created = datetime.fromisoformat(versions[-1].created.replace("Z", "+00:00"))
    if now - created >= timedelta(seconds=float(duration_seconds(policy.spec.rotation_interval))):
        return f"rotation interval {policy.spec.rotation_interval} elapsed"
    return None


def _protect(workload: dict[str, Any], tenant: Tenant, run: Run, *, kem_name: str, now: datetime) -> Protected:
    cluster, policy = run.ports.cluster, run.policy
    meta = workload["metadata"]
    tenant_name = str(tenant.metadata["name"])
    secret = cluster.get("v1", "Secret", manifests.key_secret_name(workload), meta["namespace"])
    versions = versions_of(secret)
    requested = (meta.get("annotations") or {}).get(manifests.ROTATE_ANNOTATION, "")
    answered = ((secret or {}).get("metadata", {}).get("annotations") or {}).get(manifests.ANSWERED_ANNOTATION, "")
    reason = rotation_due(policy, versions, kem_name=kem_name, requested=requested, answered=answered, now=now)
    if reason is not None:
        number = versions[-1].number + 1 if versions else 1
        # Asked before the record: a key Secret the API server would refuse is never claimed as made.
        cluster.check(
            manifests.key_secret(
                workload, tenant=tenant_name, policy=str(policy.metadata["name"]), files={}, answered=requested
            )
        )
        run.record(
            tenant_name,
            "create-workload-key" if number == 1 else "rotate-workload-key",
            workload,
            f"key/v{number}",
            {"version": number, "kem": kem_name, "reason": reason},
        )
        kek = run.ports.keys.for_provider(tenant.spec.kms.provider).wrapper(tenant_name)
        versions = [
            *versions,
            new_version(number, tenant=tenant_name, workload=meta["name"], kem_name=kem_name, kek=kek, now=now),
        ][-policy.spec.retain_versions :]
        cluster.apply(
            manifests.key_secret(
                workload,
                tenant=tenant_name,
                policy=str(policy.metadata["name"]),
                files=secret_files(versions),
                answered=requested,
            )
        )
    current = versions[-1]
    assert tenant.status is not None and tenant.status.mcs_level is not None
    intent = manifests.protected(
        workload,
        policy=str(policy.metadata["name"]),
        mcs_level=tenant.status.mcs_level,
        selinux_type=policy.spec.selinux_type,
        version=current.number,
        digest=current.digest(),
    )
    if cluster.drifted(intent, workload):
        run.record(
            tenant_name,
            "protect-workload",
            workload,
            f"template/{current.digest()}/{meta['resourceVersion']}",
            {"version": current.number, "mcsLevel": tenant.status.mcs_level, "selinuxType": policy.spec.selinux_type},
        )
        cluster.apply(intent)
    return Protected(meta["namespace"], meta["name"], workload["kind"], current.number)


def _release(workload: dict[str, Any], tenant: Tenant, run: Run) -> None:
    cluster = run.ports.cluster
    meta = workload["metadata"]
    run.record(
        str(tenant.metadata["name"]),
        "release-workload",
        workload,
        f"release/{meta['resourceVersion']}",
        {"reason": "no longer selected by the policy"},
    )
    cluster.apply(manifests.released(workload))
    cluster.delete("v1", "Secret", manifests.key_secret_name(workload), meta["namespace"])


def rotate_kek_if_due(tenant: Tenant, run: Run, now: datetime) -> None:
    """Rotate the tenant's KEK on the policy's interval: new version, every stored ciphertext of the
    tenant's workloads rewrapped under it, then versions older than ``retainVersions`` stop decrypting."""
    name, policy, cluster = str(tenant.metadata["name"]), run.policy, run.ports.cluster
    keys = run.ports.keys.for_provider(tenant.spec.kms.provider)
    facts = keys.facts(name)
    if facts is None or not facts.rotated:
        return
    interval = timedelta(seconds=float(duration_seconds(policy.spec.rotation_interval)))
    if now - datetime.fromisoformat(facts.rotated.replace("Z", "+00:00")) < interval:
        return
    tenant_obj = {"kind": "Tenant", "metadata": tenant.metadata}
    run.record(
        name,
        "rotate-kek",
        tenant_obj,
        f"kek/rotate/{facts.latest_version}",
        {"fromVersion": facts.latest_version, "interval": policy.spec.rotation_interval},
    )
    rotated = keys.rotate(name)
    if rotated is None:
        return
    kek = keys.wrapper(name)
    for namespace in tenant.status.namespaces if tenant.status else []:
        for secret in cluster.list("v1", "Secret", namespace=namespace, label_selector=f"{labels.TENANT}={name}"):
            if manifests.POLICY_ANNOTATION not in (secret["metadata"].get("annotations") or {}):
                continue
            workload = secret["metadata"]["ownerReferences"][0]["name"]
            secret.setdefault("kind", "Secret")
            run.record(
                name,
                "rewrap-workload-keys",
                secret,
                f"rewrap/{rotated.latest_version}",
                {"kekVersion": rotated.latest_version, "workload": workload},
            )
            versions = [v.rewrapped(tenant=name, workload=workload, kek=kek) for v in versions_of(secret)]
            cluster.apply(manifests.rewrapped(secret, secret_files(versions)))
    keys.limit(name, max(1, rotated.latest_version - policy.spec.retain_versions + 1))


def reconcile(
    policy: ProtectionPolicy, *, ports: ProtectionPolicyPorts, actor: str, kem_name: str, now: datetime
) -> Result:
    """Protect every selected workload of every tenant using the policy; release those no longer selected."""
    run = run_for(policy, ports, actor)
    protected: list[Protected] = []
    refused: list[SpecError] = []
    for tenant in _tenants(run):
        rotate_kek_if_due(tenant, run, now)
        for namespace in tenant.status.namespaces if tenant.status else []:
            for kind in WORKLOAD_KINDS:
                for workload in ports.cluster.list("apps/v1", kind, namespace=namespace):
                    workload.setdefault("apiVersion", "apps/v1")
                    workload.setdefault("kind", kind)
                    if selects(policy.spec.workload_selector, workload):
                        try:
                            protected.append(_protect(workload, tenant, run, kem_name=kem_name, now=now))
                        except SpecError as exc:  # one workload that cannot be protected holds up no other
                            refused.append(exc)
                    elif manifests.protected_by(workload) == policy.metadata["name"]:
                        _release(workload, tenant, run)
    if refused:
        raise SpecError(
            f"{len(refused)} workload(s) cannot be protected: {'; '.join(str(e) for e in refused[:3])}",
            reason=refused[0].reason,
        )
    return Result(workloads=protected, changed=run.audit.changed)


def weakening(
    policy: ProtectionPolicy, old: dict[str, Any] | None, *, ports: ProtectionPolicyPorts, actor: str
) -> tuple[bool, str] | None:
    """Whether this spec change weakens the policy; a weakening is recorded in the ledger at once.

    Returns None when there is no previous spec to compare with. Whether the weakening takes effect
    is the quorum gate's to say (``protectionpolicy_gate``): until approved, the spec in force stays.
    """
    if not old:
        return None
    weaker, reason = is_weakening(ProtectionPolicySpec.model_validate(old), policy.spec)
    if weaker:
        run_for(policy, ports, actor).audit.record(
            "weaken-protection-policy",
            ResourceRef(kind=KIND, name=str(policy.metadata["name"]), uid=str(policy.metadata["uid"])),
            str(policy.metadata.get("generation")),
            {"reason": reason, "quorumPolicyRef": policy.spec.quorum_policy_ref},
        )
    return weaker, reason


BEGIN_MESSAGE = "protecting the selected workloads of the policy's tenants"


def facts(policy: ProtectionPolicy) -> dict[str, Any]:
    """What the spec alone says, reported whatever the reconcile's outcome."""
    algorithms = effective(policy.spec)
    return {"security_level": security_level(algorithms), "quantum_safe": quantum_safe(algorithms)}


def done(policy: ProtectionPolicy, result: Result, weakened: tuple[bool, str] | None) -> status.Done:
    marks = []
    if weakened is not None:
        weaker, reason = weakened
        marks.append(
            status.Mark(
                type="Weakened",
                status="True" if weaker else "False",
                reason="Weakening" if weaker else "NotWeakened",
                message=reason,
            )
        )
    count = len(result.workloads)
    return status.Done(
        message=f"{count} workload(s) protected with {effective(policy.spec).kem}",
        facts={**facts(policy), "workloads": count},
        marks=marks,
    )
