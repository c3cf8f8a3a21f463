"""pydantic models → structural CustomResourceDefinitions.

The API server accepts only *structural* schemas: every node has a type, no ``$ref``, no
``additionalProperties: false`` beside ``properties``, and ``nullable`` instead of a ``null``
type. pydantic emits JSON Schema with all of those, so this module rewrites it: inlines
references, folds ``anyOf [X, null]`` into ``X`` + ``nullable``, drops titles, and keeps the
descriptions, bounds, enums, defaults and CEL rules the models declare. The output is
deterministic so that ``make verify`` can compare it byte for byte with the committed files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .v1alpha1 import GROUP, KINDS, VERSION, Resource


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    ref = node.pop("$ref", None)
    if ref is not None:
        target = _resolve(defs[ref.rsplit("/", 1)[-1]], defs)
        # Keys written beside a $ref (a field's description, its CEL rules) win over the target's.
        return _resolve({**target, **node}, defs)
    all_of = node.pop("allOf", None)
    if all_of is not None and len(all_of) == 1:
        return _resolve({**all_of[0], **node}, defs)
    return {key: _resolve(value, defs) for key, value in node.items()}


def _structural(node: Any) -> Any:
    if isinstance(node, list):
        return [_structural(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: value for key, value in node.items() if key != "title"}
    if node.get("additionalProperties") is False:
        del node["additionalProperties"]
    any_of = node.get("anyOf")
    if isinstance(any_of, list) and not node.get("x-kubernetes-int-or-string"):
        others = [branch for branch in any_of if branch != {"type": "null"}]
        if len(others) < len(any_of):
            del node["anyOf"]
            if node.get("default", ...) is None:
                del node["default"]
            merged = others[0] if len(others) == 1 else {"anyOf": others}
            return _structural({**merged, **node, "nullable": True})
    if "const" in node:
        node["enum"] = [node.pop("const")]
    return {key: _properties(value) if key == "properties" else _structural(value) for key, value in node.items()}


def _properties(properties: dict[str, Any]) -> dict[str, Any]:
    """A ``properties`` map: its keys are field names, not schema keywords (Control has a ``title``)."""
    return {name: _structural(schema) for name, schema in properties.items()}


#: The status the API server shows for an object no controller has written yet (defaulted on every
#: read): ``observedGeneration`` 0 is never an object's generation, so kstatus (Flux) and the
#: Argo CD health checks read a new object as in progress at once, even with the operator down,
#: without the operator writing a status before its first reconcile (``reconcile.status.needs_begin``).
FRESH_STATUS: dict[str, Any] = {"observedGeneration": 0}


def schema_of(model: type[Resource]) -> dict[str, Any]:
    """The structural openAPIV3Schema of one kind."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    resolved = _resolve(raw, raw.get("$defs", {}))
    resolved.pop("$defs", None)
    properties = _properties(resolved["properties"])
    properties.pop("metadata", None)
    for key in ("spec", "status"):
        properties[key].pop("nullable", None)
        properties[key].pop("default", None)
    properties["status"]["default"] = FRESH_STATUS
    schema: dict[str, Any] = {
        "type": "object",
        "description": model.description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": properties["spec"],
            "status": properties["status"],
        },
    }
    if model.rules:
        schema["x-kubernetes-validations"] = list(model.rules)
    return schema


def crd_of(model: type[Resource]) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": model.crd_name(),
            "labels": {"app.kubernetes.io/part-of": "privatevault"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Cluster",
            "names": {
                "kind": model.kind,
                "listKind": f"{model.kind}List",
                "plural": model.plural,
                "singular": model.kind.lower(),
                "shortNames": list(model.short_names),
                "categories": list(model.categories),
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        column.model_dump(by_alias=True, exclude_defaults=True) | {"type": column.type}
                        for column in model.columns
                    ],
                    "schema": {"openAPIV3Schema": schema_of(model)},
                }
            ],
        },
    }


def render(model: type[Resource]) -> str:
    header = "# Code generated by `make generate` from privatevault.api.v1alpha1; DO NOT EDIT.\n"
    return header + yaml.safe_dump(crd_of(model), sort_keys=False, width=100)


def file_name(model: type[Resource]) -> str:
    return f"{GROUP}_{model.plural}.yaml"


def write(directory: Path) -> list[Path]:
    """Write every CRD into ``directory``; remove generated files of kinds that no longer exist."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for model in KINDS:
        path = directory / file_name(model)
        path.write_text(render(model))
        written.append(path)
    for stale in set(directory.glob(f"{GROUP}_*.yaml")) - set(written):
        stale.unlink()
    return written


def drift(directory: Path) -> list[str]:
    """Names of CRD files that differ from what the models generate (empty when in sync)."""
    expected = {file_name(model): render(model) for model in KINDS}
    found = {path.name: path.read_text() for path in directory.glob(f"{GROUP}_*.yaml")}
    return sorted(name for name in expected.keys() | found.keys() if expected.get(name) != found.get(name))
