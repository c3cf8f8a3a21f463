"""API version v1alpha1 of group privatevault.io: every kind, cluster-scoped."""

from .approval import Approval
from .common import API_VERSION, GROUP, VERSION, Condition, Resource, Status
from .complianceframework import ComplianceFramework
from .evidenceexport import EvidenceExport
from .protectionpolicy import ProtectionPolicy
from .quorumpolicy import QuorumPolicy
from .tenant import Tenant, TenantSpec, TenantStatus

#: Every kind, in the order the CRDs are written.
KINDS: tuple[type[Resource], ...] = (
    Tenant,
    ProtectionPolicy,
    QuorumPolicy,
    Approval,
    EvidenceExport,
    ComplianceFramework,
)

__all__ = [
    "API_VERSION",
    "GROUP",
    "KINDS",
    "VERSION",
    "Approval",
    "ComplianceFramework",
    "Condition",
    "EvidenceExport",
    "ProtectionPolicy",
    "QuorumPolicy",
    "Resource",
    "Status",
    "Tenant",
    "TenantSpec",
    "TenantStatus",
]
