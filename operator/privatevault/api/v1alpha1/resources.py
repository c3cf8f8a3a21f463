"""Resource names and quantities, checked as the API server checks a ResourceQuota and a LimitRange.

A Tenant's ``quota.hard`` and ``limits`` become a ResourceQuota and a LimitRange in each of its
namespaces. Without these rules a bad name or quantity is accepted on the Tenant and refused only
when the operator applies the child, after the tenant's namespace, MCS level and key exist. The
rules restate, in CEL, what ``k8s.io/kubernetes/pkg/apis/core/validation`` refuses
(``ValidateResourceQuotaResourceName``, ``ValidateResourceQuantityValue``, ``ValidateLimitRange``);
the lists below are that package's ``standardQuotaResources``, ``standardContainerResources`` and
``integerResources``.

These rules live only in the CRD: the API server is the authority on its own names and quantities
(parsed by its ``quantity()``), and the integration tests hold the rules to what it refuses on a real
ResourceQuota and LimitRange, so no Python copy of them is kept.
"""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import WithJsonSchema

from .common import cel, qualified_name_cel

#: What a ResourceQuota may count without a ``/``: the API server's standard quota resources.
QUOTA_RESOURCES: Final = (
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.storage",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "persistentvolumeclaims",
    "configmaps",
    "services.nodeports",
    "services.loadbalancers",
)
#: What a container LimitRange may limit without a ``/`` (besides ``hugepages-<size>``).
CONTAINER_RESOURCES: Final = ("cpu", "memory", "ephemeral-storage")
#: Resources counted in whole units: a quota of 1.5 pods is refused.
INTEGER_RESOURCES: Final = (
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "services.nodeports",
    "services.loadbalancers",
)
#: Longest quantity string accepted; it also bounds the cost of the CEL rules that parse it.
QUANTITY_MAX_LENGTH: Final = 64

QUANTITY_MESSAGE: Final = (
    "must be a Kubernetes quantity that is not negative, such as 2, 500m, 512Mi or 10Gi"
    " (a number, optionally with a suffix such as m, k, M, G, Ki, Mi or Gi)"
)

#: A Kubernetes quantity ("500m", "4", "10Gi"): users write numbers or strings; the API server
#: refuses anything ``quantity()`` cannot parse and negative amounts.
Quantity = Annotated[
    int | str,
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "maxLength": QUANTITY_MAX_LENGTH,
            "x-kubernetes-validations": [
                cel(
                    "type(self) == string ? isQuantity(self) && !quantity(self).isLessThan(quantity('0')) : self >= 0",
                    QUANTITY_MESSAGE,
                )
            ],
        }
    ),
]


def cel_list(values: tuple[str, ...]) -> str:
    """A CEL list literal of strings."""
    return "[" + ", ".join(f"'{value}'" for value in values) + "]"


def _integer(value: str) -> str:
    """CEL: the int-or-string ``value`` is a whole number (quantities are parsed first)."""
    return f"(type({value}) == int || (isQuantity({value}) && quantity({value}).isInteger()))"


def _extended(key: str) -> str:
    """CEL: ``key`` is an extended resource (domain-prefixed, outside kubernetes.io): counted in whole units."""
    return f"({key}.contains('/') && !{key}.contains('kubernetes.io/') && !{key}.startsWith('requests.'))"


QUOTA_NAMES_MESSAGE: Final = (
    "quota.hard names resources a ResourceQuota counts: cpu, memory, ephemeral-storage, their requests. and"
    " limits. forms, requests.storage, pods, services, secrets, configmaps, persistentvolumeclaims and"
    " other object counts, hugepages-<size>, or a qualified name such as count/deployments.apps or"
    " requests.nvidia.com/gpu"
)
QUOTA_INTEGER_MESSAGE: Final = (
    "quota.hard counts pods, services, secrets, configmaps, persistentvolumeclaims and other objects in"
    " whole numbers: write 10, not 10.5 or 500m"
)
QUOTA_EXTENDED_INTEGER_MESSAGE: Final = (
    "quota.hard counts object counts (count/...) and extended resources (such as nvidia.com/gpu) in whole"
    " numbers: write 2, not 1.5 or 500m"
)


def quota_rules() -> list[dict[str, str]]:
    """Rules on the map ``quota.hard``: names a ResourceQuota accepts, whole numbers where it counts."""
    return [
        cel(
            f"self.all(k, {qualified_name_cel('k')} && (k.contains('/') || k in {cel_list(QUOTA_RESOURCES)}"
            " || k.startsWith('hugepages-') || k.startsWith('requests.hugepages-')))",
            QUOTA_NAMES_MESSAGE,
        ),
        cel(f"self.all(k, !(k in {cel_list(INTEGER_RESOURCES)}) || {_integer('self[k]')})", QUOTA_INTEGER_MESSAGE),
        cel(f"self.all(k, !{_extended('k')} || {_integer('self[k]')})", QUOTA_EXTENDED_INTEGER_MESSAGE),
    ]


LIMIT_NAMES_MESSAGE: Final = (
    "limits name resources a container has: cpu, memory, ephemeral-storage, hugepages-<size>, or an"
    " extended resource such as nvidia.com/gpu (not pods, not requests.*: those belong in quota.hard)"
)


def limit_names_rule() -> dict[str, str]:
    """The rule on one of the LimitRange's maps: each name is a resource a container can request."""
    return cel(
        f"self.all(k, {qualified_name_cel('k')} && (k.contains('/')"
        f" ? (k.contains('kubernetes.io/') || !k.startsWith('requests.'))"
        f" : (k in {cel_list(CONTAINER_RESOURCES)} || k.startsWith('hugepages-'))))",
        LIMIT_NAMES_MESSAGE,
    )


#: The LimitRange's order, ``min <= defaultRequest <= default <= max``, pair by pair as the API server
#: checks it: (lower field, higher field).
LIMIT_ORDER: Final = (
    ("min", "max"),
    ("min", "defaultRequest"),
    ("defaultRequest", "max"),
    ("defaultRequest", "default"),
    ("min", "default"),
    ("default", "max"),
)


def limit_order_message(lower: str, higher: str) -> str:
    return (
        f"limits.{lower} is above limits.{higher} for a resource: a LimitRange needs"
        f" min <= defaultRequest <= default <= max for each resource; lower {lower} or raise {higher}"
    )


def _as_quantity(value: str) -> str:
    return f"quantity(string({value}))"


def limit_order_rules() -> list[dict[str, str]]:
    """Rules on the LimitRange as a whole: for each resource named in both fields, lower <= higher."""
    rules = []
    for lower, higher in LIMIT_ORDER:
        low, high = f"self.{lower}[k]", f"self.{higher}[k]"
        both_parse = f"isQuantity(string({low})) && isQuantity(string({high}))"
        rules.append(
            cel(
                f"!has(self.{lower}) || !has(self.{higher}) || self.{lower}.all(k, !(k in self.{higher})"
                f" || !({both_parse}) || !{_as_quantity(low)}.isGreaterThan({_as_quantity(high)}))",
                limit_order_message(lower, higher),
            )
        )
    return rules


NO_OVERCOMMIT_MESSAGE: Final = (
    "hugepages and extended resources (such as nvidia.com/gpu) cannot be overcommitted: when limits.default"
    " and limits.defaultRequest both name one, they must be equal"
)


def no_overcommit_rule() -> dict[str, str]:
    """Hugepages and extended resources: a default limit equal to the default request, or none."""
    default, request = "self.default[k]", "self.defaultRequest[k]"
    return cel(
        "!has(self.default) || !has(self.defaultRequest) || self.default.all(k,"
        " !(k in self.defaultRequest) || !(k.startsWith('hugepages-') || (k.contains('/')"
        " && !k.contains('kubernetes.io/')))"
        f" || !(isQuantity(string({default})) && isQuantity(string({request})))"
        f" || {_as_quantity(default)}.compareTo({_as_quantity(request)}) == 0)",
        NO_OVERCOMMIT_MESSAGE,
    )
