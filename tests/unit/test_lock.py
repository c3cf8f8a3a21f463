"""The lock files pin what pyproject.toml asks for, each pin with hashes: requirements.lock (the
runtime, installed into the image) is the runtime part of requirements-dev.lock (what `make setup`
and CI install), at the same versions, so the image runs what the tests ran."""

from __future__ import annotations

import re
import tomllib

from tests.support import REPO

PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)((?: \\\n    --hash=sha256:[0-9a-f]{64})+)", re.MULTILINE)


def pins(name: str) -> dict[str, str]:
    text = (REPO / name).read_text()
    found = {canonical(package): version for package, version, _ in PIN.findall(text)}
    requirement_lines = [line for line in text.splitlines() if re.match(r"^[A-Za-z0-9]", line)]
    assert len(found) == len(requirement_lines), f"{name}: a pin without hashes or not pinned with =="
    return found


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(requirements: list[str]) -> set[str]:
    return {canonical(re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]) for requirement in requirements}


def test_every_pin_has_hashes_and_the_runtime_matches_the_dev_lock() -> None:
    runtime, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    assert {name: (version, dev.get(name)) for name, version in runtime.items() if dev.get(name) != version} == {}


def test_the_locks_cover_pyproject() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    assert requirement_names(project["dependencies"]) - runtime.keys() == set()
    assert requirement_names(project["optional-dependencies"]["dev"]) - dev.keys() == set()
    # Installed without build isolation from the dev lock: the project's build backend is in it.
    assert "setuptools" in dev
    assert "privatevault" not in runtime and "privatevault" not in dev
