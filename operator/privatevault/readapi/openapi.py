"""The OpenAPI 3.1 document of the read API, generated from :mod:`privatevault.readapi.models`.

Committed as ``docs/openapi/read-api.json``; ``make verify`` fails when it drifts from the models
(``pvctl api openapi --check``), as the CRDs do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic.json_schema import models_json_schema

from privatevault import __version__
from privatevault.readapi import models

_SECURED: list[dict[str, list[str]]] = [{"bearer": []}]
_TENANT = {"name": "tenant", "in": "query", "schema": {"type": "string"}}


def _ref(model: type[models.Model]) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _answer(model: type[models.Model], *errors: int) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": {"description": "OK", "content": {"application/json": {"schema": _ref(model)}}}}
    for status in errors:
        responses[str(status)] = {
            "description": {
                400: "Bad query",
                401: "No or invalid token",
                403: "Not allowed by RBAC",
                404: "Not found or not readable",
                503: "Ledger or cluster unavailable",
            }[status],
            "content": {"application/json": {"schema": _ref(models.Problem)}},
        }
    return responses


def _get(
    summary: str,
    model: type[models.Model],
    *errors: int,
    params: list[dict[str, Any]] | None = None,
    secured: bool = True,
) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": _answer(model, *errors)}
    if params:
        operation["parameters"] = params
    if secured:
        operation["security"] = _SECURED
    return {"get": operation}


def _seq(what: str) -> list[dict[str, Any]]:
    return [
        {
            "name": "seq",
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
            "description": what,
        }
    ]


def document() -> dict[str, Any]:
    _, schemas = models_json_schema(
        [(model, "serialization") for model in models.MODELS],
        by_alias=True,
        ref_template="#/components/schemas/{model}",
    )
    audit_params = [
        _TENANT,
        {"name": "action", "in": "query", "schema": {"type": "string"}},
        {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}},
        {"name": "until", "in": "query", "schema": {"type": "string", "format": "date-time"}},
        {"name": "seqFrom", "in": "query", "schema": {"type": "integer", "minimum": 1}},
        {"name": "seqTo", "in": "query", "schema": {"type": "integer", "minimum": 1}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
    ]
    evidence = {
        "get": {
            "summary": "Download an evidence bundle (tar.gz)",
            "security": _SECURED,
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {
                "200": {
                    "description": "The bundle",
                    "content": {"application/gzip": {}},
                    "headers": {
                        "Repr-Digest": {
                            "description": "The bundle's SHA-256 as the export's status reports it (RFC 9530)",
                            "schema": {"type": "string", "pattern": "^sha-256=:[A-Za-z0-9+/]{43}=:$"},
                        }
                    },
                },
                **{k: v for k, v in _answer(models.Problem, 401, 403, 404).items() if k != "200"},
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "PrivateVault read API", "version": __version__.split("+")[0]},
        "paths": {
            "/healthz": _get("The process answers", models.Health, secured=False),
            "/readyz": _get(
                "Ledger reachable, integrity not refused, start-up done", models.Health, 503, secured=False
            ),
            "/api/v1/status": _get("The installation at a glance", models.Status, 401, 403, 503),
            "/api/v1/tenants": _get("Tenants the caller may read", models.TenantList, 401, 503),
            "/api/v1/audit": _get(
                "A page of ledger records", models.AuditPage, 400, 401, 403, 503, params=audit_params
            ),
            "/api/v1/audit/{seq}": _get(
                "One ledger record", models.AuditRecord, 401, 404, 503, params=_seq("Sequence number")
            ),
            "/api/v1/proofs/{seq}": _get(
                "RFC 9162 inclusion proof against the published checkpoint",
                models.InclusionProof,
                401,
                404,
                503,
                params=_seq("Sequence number"),
            ),
            "/api/v1/checkpoints/latest": _get(
                "The published checkpoint with cosignatures", models.Checkpoint, 401, 403, 404
            ),
            "/api/v1/evidence/{name}": evidence,
        },
        "components": {
            "schemas": schemas["$defs"],
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A Kubernetes token (TokenReview); RBAC decides (SubjectAccessReview).",
                }
            },
        },
    }


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


def drifted(path: Path) -> bool:
    return not path.exists() or path.read_text() != render()
