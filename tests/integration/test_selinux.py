"""The SELinux modules in selinux/ compile with Debian's refpolicy development files (the devel
Makefile, checkmodule, semodule_package) into .pp packages, and those packages declare what the
chart and the ProtectionPolicy docs name: the operator's domain, the protected workloads' domain,
both container domains under the MCS constraint, and the key file type only workloads may read.

The packages are read back as CIL with SELinux's own converter (``/usr/libexec/selinux/hll/pp``):
``seinfo`` reads only a linked kernel policy, and Debian ships no ``sedismod``."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import REPO

pytestmark = [pytest.mark.integration]

DEVEL_MAKEFILE = Path("/usr/share/selinux/devel/Makefile")
PP_TO_CIL = Path("/usr/libexec/selinux/hll/pp")
MODULES = ("privatevault_operator", "privatevault_workload")


@pytest.fixture(scope="module")
def cil(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Each module compiled to its .pp package, then read back as CIL."""
    for needed in (DEVEL_MAKEFILE, PP_TO_CIL):
        assert needed.exists(), f"{needed} is missing: `make setup` installs selinux-policy-dev and policycoreutils"
    work = tmp_path_factory.mktemp("selinux")
    for source in (REPO / "selinux").iterdir():
        shutil.copy(source, work)
    done = subprocess.run(
        ["make", "-f", str(DEVEL_MAKEFILE), *(f"{name}.pp" for name in MODULES)],
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    texts: dict[str, str] = {}
    for name in MODULES:
        package = work / f"{name}.pp"
        assert package.stat().st_size > 0
        subprocess.run([str(PP_TO_CIL), str(package), str(work / f"{name}.cil")], check=True, capture_output=True)
        texts[name] = (work / f"{name}.cil").read_text()
    return texts


def types(text: str) -> set[str]:
    return set(re.findall(r"^\(type (\w+)\)$", text, re.MULTILINE))


def in_attribute(text: str, attribute: str) -> set[str]:
    found: set[str] = set()
    for members in re.findall(rf"^\(typeattributeset {attribute} \(([^)]*)\)\)$", text, re.MULTILINE):
        found.update(members.split())
    return found


def test_the_operator_module_declares_its_domain(cil: dict[str, str]) -> None:
    text = cil["privatevault_operator"]
    assert {"privatevault_operator_t", "privatevault_operator_exec_t", "privatevault_conf_t"} <= types(text)
    assert "privatevault_operator_t" in in_attribute(text, "container_domain")
    assert "privatevault_operator_t" in in_attribute(text, "mcs_constrained_type")
    # What the operator talks to: PostgreSQL and the API server, Vault on unreserved ports.
    assert re.search(r"\(allow privatevault_operator_t postgresql_port_t \(tcp_socket \(name_connect\)\)\)", text)


def test_the_workload_module_is_an_mcs_constrained_container_domain(cil: dict[str, str]) -> None:
    text = cil["privatevault_workload"]
    assert {"privatevault_workload_t", "privatevault_keys_t"} <= types(text)
    assert "privatevault_workload_t" in in_attribute(text, "container_domain")
    assert "privatevault_workload_t" in in_attribute(text, "mcs_constrained_type")


def test_workloads_read_their_keys_and_cannot_change_them(cil: dict[str, str]) -> None:
    rules = re.findall(
        r"^\(allow privatevault_workload_t privatevault_keys_t \(file \(([^)]*)\)\)\)$",
        cil["privatevault_workload"],
        re.MULTILINE,
    )
    granted = {perm for rule in rules for perm in rule.split()}
    assert {"open", "read", "getattr"} <= granted
    assert not granted & {"write", "append", "create", "unlink", "rename", "setattr", "relabelfrom"}
    # No other domain in these modules is granted the key files.
    both = "\n".join(cil.values())
    holders = set(re.findall(r"^\(allow (\w+) privatevault_keys_t ", both, re.MULTILINE))
    assert holders == {"privatevault_workload_t"}
