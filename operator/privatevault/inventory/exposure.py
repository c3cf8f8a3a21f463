"""How far outside the cluster a TLS Secret's certificate may be seen, read from Ingresses and Services.

Exposure is judged per namespace from objects the operator can already list, without reading
Pods or following volume mounts. That makes it cheap and deterministic, and coarse on purpose:

    INGRESS        3   an Ingress in the namespace names the Secret in ``spec.tls[].secretName``:
                       the certificate *is* presented to clients outside the cluster (certain)
    LOAD_BALANCER  2   the namespace has a ``LoadBalancer`` Service, or a Service with
                       ``externalIPs``: an address built for outside traffic exists, and the
                       Secret may be behind it (potential)
    NODE_PORT      1   the namespace has a ``NodePort`` Service: a port open on every node,
                       usually reachable from the node network but not necessarily the internet
                       (potential, narrower)
    NONE           0   none of the above: reachable only from inside the cluster

A LoadBalancer Service also opens node ports, so it outranks NodePort; a named reference
outranks both because it is a fact, not a possibility. Only the strongest level counts. The
numbers are consecutive because each step adds the same weight to the risk score (weight 5, half a
sensitivity step: see :mod:`privatevault.inventory.risk`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import IntEnum
from typing import Any


class Exposure(IntEnum):
    """How far a certificate may be seen; higher is further (see the module docstring)."""

    NONE = 0
    NODE_PORT = 1
    LOAD_BALANCER = 2
    INGRESS = 3

    @property
    def label(self) -> str:
        """The CamelCase name used in status, ledger details and metric labels."""
        return _LABELS[self]


_LABELS = {
    Exposure.NONE: "None",
    Exposure.NODE_PORT: "NodePort",
    Exposure.LOAD_BALANCER: "LoadBalancer",
    Exposure.INGRESS: "Ingress",
}


def exposure(
    secret_name: str,
    namespace: str,
    ingresses: Sequence[Mapping[str, Any]],
    services: Sequence[Mapping[str, Any]],
) -> Exposure:
    """The exposure of Secret ``namespace/secret_name``; objects of other namespaces are ignored."""
    if any(secret_name in _tls_secret_names(ingress) for ingress in _in(namespace, ingresses)):
        return Exposure.INGRESS
    return max((_service_exposure(service) for service in _in(namespace, services)), default=Exposure.NONE)


def _in(namespace: str, objects: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [obj for obj in objects if _mapping(obj.get("metadata")).get("namespace") == namespace]


def _tls_secret_names(ingress: Mapping[str, Any]) -> set[str]:
    tls = _mapping(ingress.get("spec")).get("tls")
    if not isinstance(tls, list):
        return set()
    return {str(entry["secretName"]) for entry in tls if isinstance(entry, Mapping) and entry.get("secretName")}


def _service_exposure(service: Mapping[str, Any]) -> Exposure:
    spec = _mapping(service.get("spec"))
    kind = spec.get("type")
    if kind == "LoadBalancer" or spec.get("externalIPs"):
        return Exposure.LOAD_BALANCER
    if kind == "NodePort":
        return Exposure.NODE_PORT
    return Exposure.NONE


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
