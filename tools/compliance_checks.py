#!/usr/bin/env python3
"""Writes docs/compliance-checks.md from the check library; with --check, fails when it drifts instead.

python3 tools/compliance_checks.py [--check]
"""

from __future__ import annotations

import sys
from pathlib import Path

from privatevault.compliance.reference import page

PAGE = Path(__file__).resolve().parents[1] / "docs" / "compliance-checks.md"


def main(argv: list[str]) -> int:
    wanted = page()
    if "--check" in argv:
        if not PAGE.exists() or PAGE.read_text() != wanted:
            print(f"{PAGE} drifts from the check library: run make generate", file=sys.stderr)
            return 1
        print(f"{PAGE} matches the check library")
        return 0
    PAGE.write_text(wanted)
    print(PAGE)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
