"""``python -m tests.bench``: run every benchmark, print the figures, write them as JSON.

Each benchmark module exposes ``run() -> dict[str, float]``. The JSON file carries the machine
and the time so that runs can be compared.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

MODULES = (
    "bench_ledger",
    "bench_witness",
    "bench_crypto",
    "bench_quorum",
    "bench_tenants",
    "bench_readapi",
    "bench_evidence",
    "bench_compliance_core",
    "bench_compliance",
)


def main() -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(".bench/results.json"))
    parser.add_argument("--only", action="append", help="run only these modules")
    args = parser.parse_args()
    figures: dict[str, float] = {}
    for name in args.only or MODULES:
        try:
            module = importlib.import_module(f"tests.bench.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"tests.bench.{name}":
                raise
            continue
        print(f"== {name}", flush=True)
        results = module.run()
        for key, value in results.items():
            print(f"  {key:<48} {value:>14,.3f}", flush=True)
        figures |= results
    report = {
        "time": datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0]},
        "figures": figures,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
