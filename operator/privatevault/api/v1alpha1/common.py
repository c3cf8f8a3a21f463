"""Shapes shared by every kind: the status with kstatus conditions, and schema helpers.

The models double as the CRD schema source (see ``privatevault.api.crdgen``), so anything that
the API server should enforce is declared here: patterns, bounds, enums and CEL rules
(``x-kubernetes-validations``) attached with :func:`cel`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

GROUP = "privatevault.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
#: A Kubernetes qualified name (label keys, resource names): an optional DNS-subdomain prefix and
#: ``/``, then a name of at most 63 characters (the length is checked apart).
QUALIFIED_NAME = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$"
)
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
#: A data residency region, for example eu-west-1: tenants live in one, approvers sit in one.
REGION = r"^[a-z]{2}(-[a-z]+)+-[0-9]+$"
DURATION = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"

#: A free-form object (check parameters): the only place unknown fields are preserved.
FreeForm = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]


def cel(rule: str, message: str, *, field_path: str | None = None, reason: str | None = None) -> dict[str, str]:
    """One CEL validation rule with the message a person reads when the API server refuses."""
    out = {"rule": rule, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    if reason:
        out["reason"] = reason
    return out


def qualified_name_cel(key: str) -> str:
    """CEL: the string ``key`` is a qualified name, its name part at most 63 characters."""
    return f"{key}.matches(r'{QUALIFIED_NAME}') && size({key}.substring({key}.lastIndexOf('/') + 1)) <= 63"


def is_qualified_name(text: str) -> bool:
    """What :func:`qualified_name_cel` checks, in Python."""
    return re.fullmatch(QUALIFIED_NAME, text) is not None and len(text.rsplit("/", 1)[-1]) <= 63


def labels_problem(labels: Mapping[str, str], message: str) -> str | None:
    """``message`` when a key of ``labels`` cannot be a label key, or a value a label value; else None."""
    bad_key = any(not is_qualified_name(key) for key in labels)
    bad_value = any(len(value) > 63 or not re.fullmatch(LABEL_VALUE, value) for value in labels.values())
    return (
        message if bad_key else "label values have at most 63 letters, digits, '-', '_' and '.'" if bad_value else None
    )


def validations(*rules: dict[str, str]) -> dict[str, Any]:
    """``json_schema_extra`` carrying CEL rules for a model or a field."""
    return {"x-kubernetes-validations": list(rules)}


class Model(BaseModel):
    """Base of every API model: camelCase on the wire, snake_case in Python, unknown fields refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(Model):
    """A kstatus condition; ``lastTransitionTime`` changes only when ``status`` flips."""

    type: str = Field(max_length=64)
    status: ConditionStatus
    reason: str = Field(max_length=128, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    message: str = Field(default="", max_length=4096)
    last_transition_time: str = Field(json_schema_extra={"format": "date-time"})
    observed_generation: int | None = None


class Status(Model):
    """Status shared by every kind."""

    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list, max_length=16)


class PrintColumn(Model):
    """An ``additionalPrinterColumns`` entry."""

    name: str
    type: Literal["string", "integer", "number", "boolean", "date"]
    json_path: str
    description: str = ""
    priority: int = 0


def ready_columns() -> list[PrintColumn]:
    """The columns every kind shows first: Ready and its reason."""
    return [
        PrintColumn(name="Ready", type="string", json_path='.status.conditions[?(@.type=="Ready")].status'),
        PrintColumn(name="Reason", type="string", json_path='.status.conditions[?(@.type=="Ready")].reason'),
    ]


AGE = PrintColumn(name="Age", type="date", json_path=".metadata.creationTimestamp")


class Resource(Model):
    """A custom resource: metadata describes the CRD, ``spec``/``status`` the schema."""

    kind: ClassVar[str]
    plural: ClassVar[str]
    short_names: ClassVar[tuple[str, ...]] = ()
    categories: ClassVar[tuple[str, ...]] = ("privatevault",)
    columns: ClassVar[tuple[PrintColumn, ...]] = ()
    description: ClassVar[str] = ""
    #: CEL rules on the whole object: the only place a rule may read ``self.metadata.name``.
    rules: ClassVar[tuple[dict[str, str], ...]] = ()

    model_config = ConfigDict(extra="ignore")

    metadata: dict[str, Any] = Field(default_factory=dict)
    status: Status | None = None

    @classmethod
    def crd_name(cls) -> str:
        return f"{cls.plural}.{GROUP}"
