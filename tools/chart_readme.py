#!/usr/bin/env python3
"""Writes the values table of charts/privatevault/README.md from values.schema.json (descriptions,
types) and values.yaml (defaults); with --check, fails when the README's table differs instead.

    python3 tools/chart_readme.py [--check]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[1] / "charts" / "privatevault"
README = CHART / "README.md"
BEGIN = "<!-- values:begin: generated from values.schema.json by tools/chart_readme.py -->"
END = "<!-- values:end -->"


def _shown(value: Any) -> str:
    if value in (None, "", {}, []):
        return "—"
    return "`" + json.dumps(value, separators=(", ", ": ")) + "`"


def rows(schema: dict[str, Any], defaults: Any, prefix: str = "") -> list[str]:
    out = []
    for key, spec in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        default = defaults.get(key) if isinstance(defaults, dict) else None
        if spec.get("type") == "object" and "properties" in spec:
            out += rows(spec, default, f"{path}.")
            continue
        kind = spec.get("type", "any")
        kind = " or ".join(kind) if isinstance(kind, list) else kind
        if "enum" in spec:
            kind += ": " + ", ".join(f"`{v}`" for v in spec["enum"])
        out.append(f"| `{path}` | {kind} | {_shown(default)} | {spec.get('description', '')} |")
    return out


def table() -> str:
    schema = json.loads((CHART / "values.schema.json").read_text())
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    lines = ["| value | type | default | description |", "| --- | --- | --- | --- |", *rows(schema, defaults)]
    return "\n".join([BEGIN, *lines, END])


def generated(text: str) -> str:
    """``text`` with the table between the markers replaced by the one made now."""
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + table() + text[end:]


def main(argv: list[str]) -> int:
    text = README.read_text()
    wanted = generated(text)
    if "--check" in argv:
        if wanted != text:
            print(f"{README} drifts from values.schema.json: run python3 tools/chart_readme.py", file=sys.stderr)
            return 1
        print(f"{README} matches values.schema.json")
        return 0
    README.write_text(wanted)
    print(README)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
