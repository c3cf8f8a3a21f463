"""The check reference page, ``docs/compliance-checks.md``, written from :data:`LIBRARY`.

``make generate`` writes it (``tools/compliance_checks.py``) and ``make verify`` fails when the
committed page drifts, so what users read is what the code does.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from .checks import LIBRARY, OUTCOMES, CheckSpec

HEADER = """# Compliance checks

<!-- Generated from privatevault.compliance.checks.LIBRARY by `make generate`; do not edit. -->

The checks a ComplianceFramework's controls may name (`spec.controls[].checks[].name`), with their
parameters (`params`, camelCase; unknown or ill-typed parameters make the framework `Stalled` with
reason `InvalidCheckParams`). Each check gives one outcome per tenant: `pass`, `fail`,
`not-applicable` or `unknown`. A control's state combines its checks' outcomes (any `fail` → `fail`,
else any `unknown` → `unknown`, else any `pass` → `pass`, else `not-applicable`); see
`docs/compliance.md` for exceptions, attestations and the score.

| check | params | passes when |
| --- | --- | --- |
"""


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    value: Any = info.default_factory() if info.default_factory is not None else info.default  # type: ignore[call-arg]
    return "default `" + json.dumps(value) + "`" if value is not PydanticUndefined else "optional"


def params_of(spec: CheckSpec[Any]) -> list[str]:
    """``name`` (type, default): description, per parameter, camelCase."""
    out = []
    for name, info in spec.params.model_fields.items():
        alias = info.alias or name
        kind = str(info.annotation) if getattr(info.annotation, "__args__", None) else info.annotation.__name__
        out.append(f"`{alias}` ({kind}, {_default(info)})")
    return out


def section(spec: CheckSpec[Any]) -> str:
    params = params_of(spec)
    lines = [f"## `{spec.name}`", "", spec.summary, ""]
    lines += ["**Parameters:** " + ("; ".join(params) if params else "none."), ""]
    lines += ["**Reads:** " + "; ".join(spec.reads) + ".", ""]
    lines += ["**Why:** " + spec.why, ""]
    lines += ["**Outcomes:**", ""]
    lines += [f"- `{o}`: {spec.outcomes[o]}" for o in OUTCOMES if o in spec.outcomes]
    return "\n".join(lines) + "\n"


def page() -> str:
    rows = [
        f"| [`{s.name}`](#{s.name}) | {', '.join(params_of(s)) or 'none'} | {s.summary} |" for s in LIBRARY.values()
    ]
    return HEADER + "\n".join(rows) + "\n\n" + "\n".join(section(s) for s in LIBRARY.values())
