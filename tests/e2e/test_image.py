"""The operator's OCI image, built without a container engine (tools/image/build.py, `make image`):
two builds from the same inputs give the same digest; it runs as uid 65532, holds no shell, pip,
compiler or package manager, and carries an SBOM naming every Debian and Python package in it; and
its entrypoint, run from the unpacked root filesystem (``unshare --root``, the host's loopback
network), reconciles a Tenant to Ready on the real control plane with the ledger in PostgreSQL.

The build is cached in .image/ by a digest of its inputs: only a changed input rebuilds it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from privatevault.testbench.process import ManagedProcess
from tests import builders
from tests.support import REPO, Kubectl, wait_for_condition

pytestmark = [pytest.mark.e2e]

IMAGE_DIR = REPO / ".image"
UID = 65532


@pytest.fixture(scope="module")
def build() -> dict[str, Any]:
    """The image's build record, after a build (or none, when the inputs are unchanged) and a
    second build checking that the digest is the same (once per set of inputs)."""
    if os.geteuid() != 0:
        pytest.fail("the image test needs root: mmdebstrap, chroot and unshare (CI runs as root)")
    subprocess.run(
        [sys.executable, str(REPO / "tools/image/build.py"), "--out", str(IMAGE_DIR), "--check-reproducible"],
        check=True,
        timeout=1800,
    )
    record: dict[str, Any] = json.loads((IMAGE_DIR / "build.json").read_text())
    return record


@pytest.fixture(scope="module")
def bundle(build: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image unpacked as a runtime would: rootfs/ and the runtime config (config.json)."""
    target = tmp_path_factory.mktemp("image") / "bundle"
    subprocess.run(
        ["umoci", "unpack", "--image", f"{IMAGE_DIR / 'oci'}:{build['tag']}", str(target)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return target


def test_same_inputs_give_the_same_digest(build: dict[str, Any]) -> None:
    assert build["digest"].startswith("sha256:")
    assert build["reproduced"] == {
        "inputs": build["inputs"],
        "digest": build["digest"],
        "build_seconds": build["reproduced"]["build_seconds"],
    }
    index = json.loads((IMAGE_DIR / "oci" / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [build["digest"]]
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == build["tag"]


def test_runs_as_nonroot_without_a_shell(bundle: Path) -> None:
    process = json.loads((bundle / "config.json").read_text())["process"]
    assert process["user"]["uid"] == UID and process["user"]["gid"] == UID
    assert process["args"] == ["/usr/bin/python3", "-m", "privatevault", "operator", "run"]
    rootfs = bundle / "rootfs"
    assert (rootfs / "usr/bin/python3").exists()
    site = next((rootfs / "usr/local/lib").glob("python3.*/dist-packages"))
    assert (site / "privatevault" / "__init__.py").exists()
    absent = [
        "usr/bin/sh",
        "usr/bin/bash",
        "usr/bin/dash",
        "usr/bin/pip",
        "usr/bin/pip3",
        "usr/bin/gcc",
        "usr/bin/cc",
        "usr/bin/dpkg",
        "usr/bin/apt",
        "usr/bin/perl",
        "usr/bin/awk",
        "usr/bin/env",
        "usr/bin/ls",
    ]
    assert [path for path in absent if os.path.lexists(rootfs / path)] == []
    present = ["etc/os-release", "etc/services", "etc/protocols", "etc/mime.types", "usr/share/zoneinfo/UTC"]
    assert [path for path in present if not (rootfs / path).exists()] == []
    assert not list(site.glob("pip")) and not list(site.glob("setuptools"))
    # Hash-based byte code only: nothing in the image depends on a file's mtime.
    pyc = next(site.glob("privatevault/__pycache__/__init__.*.pyc")).read_bytes()
    assert int.from_bytes(pyc[4:8], "little") == 0b01  # PEP 552: hash-based, unchecked


def test_sbom_names_what_is_inside(build: dict[str, Any], bundle: Path) -> None:
    rootfs = bundle / "rootfs"
    shipped = (rootfs / "usr/share/doc/privatevault/sbom.spdx.json").read_text()
    assert shipped == (IMAGE_DIR / "sbom.spdx.json").read_text()
    sbom = json.loads(shipped)
    assert sbom["spdxVersion"] == "SPDX-2.3"
    purls = {ref["referenceLocator"] for p in sbom["packages"] for ref in p["externalRefs"]}
    debs = {path.name for path in (rootfs / "var/lib/dpkg/status.d").iterdir()}
    assert {"python3", "libpython3.11-stdlib", "base-files", "netbase", "tzdata", "media-types"} <= debs
    assert not debs & {"bash", "dash", "dpkg", "perl-base", "mawk", "coreutils"}
    assert {purl.split("@")[0].removeprefix("pkg:deb/debian/") for purl in purls if purl.startswith("pkg:deb/")} == debs
    site = next((rootfs / "usr/local/lib").glob("python3.*/dist-packages"))
    installed = set()
    for dist in site.glob("*.dist-info"):
        name, version = dist.name.removesuffix(".dist-info").rsplit("-", 1)
        installed.add(f"{re.sub(r'[-_.]+', '-', name).lower()}@{version}")
    in_sbom = {
        purl.removeprefix("pkg:pypi/").replace("_", "-").lower() for purl in purls if purl.startswith("pkg:pypi/")
    }
    assert installed == in_sbom
    assert f"privatevault@{build['tag']}" in in_sbom


@pytest.fixture
def image_operator(
    bundle: Path, kubectl: Kubectl, operator_dsn_file: Path, tmp_path: Path, crds: None
) -> Iterator[ManagedProcess]:
    """The image's entrypoint in its own mount and PID namespaces, rooted in the unpacked rootfs,
    as the image's user, with the image's environment and nothing of the host's; the kubeconfig
    and the ledger DSN file are copied in where a Pod would mount its Secrets."""
    config = json.loads((bundle / "config.json").read_text())["process"]
    rootfs = bundle / "rootfs"
    secrets = rootfs / "etc/privatevault"
    secrets.mkdir(exist_ok=True)
    for source, name in ((kubectl.kubeconfig, "kubeconfig"), (operator_dsn_file, "ledger.dsn")):
        shutil.copyfile(source, secrets / name)
        os.chown(secrets / name, UID, UID)
        os.chmod(secrets / name, 0o400)
    env = dict(item.split("=", 1) for item in config["env"])
    env |= {
        "PRIVATEVAULT_LEDGER_DSN_FILE": "/etc/privatevault/ledger.dsn",
        "PRIVATEVAULT_NAMESPACE": f"pv-image-{uuid.uuid4().hex[:8]}",
        "PRIVATEVAULT_DRIFT_INTERVAL": "2",
        "PRIVATEVAULT_RETRY_DELAY": "1",
    }
    user = config["user"]
    process = ManagedProcess(
        "operator-image",
        [
            "unshare",
            "--mount",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            f"--root={rootfs}",
            f"--setuid={user['uid']}",
            f"--setgid={user['gid']}",
            f"--wd={config['cwd']}",
            *config["args"],
            "--kubeconfig",
            "/etc/privatevault/kubeconfig",
        ],
        tmp_path / "operator-image.log",
        env=env,
    )
    process.start()
    yield process
    process.stop(grace=10)


def test_the_image_reconciles_a_tenant(image_operator: ManagedProcess, kubectl: Kubectl) -> None:
    kubectl.apply(builders.tenant("e2e-image", quota={"pods": 5}))
    obj = wait_for_condition(kubectl, "tenant", "e2e-image", "Ready", current=True, timeout=120)
    assert obj["status"]["namespaces"] == ["e2e-image"]
    assert kubectl.run("get", "resourcequota", "-n", "e2e-image", "-o", "name").stdout.strip()
    kubectl.run("delete", "tenant", "e2e-image", "--timeout=60s")
    log = image_operator.log.read_text(errors="replace")
    assert "Traceback" not in log, log
