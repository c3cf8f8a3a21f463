"""Builds the operator's OCI image without a container engine, reproducibly.

Why this shape: no Docker or registry is reachable here, but Debian's packages and PyPI are. So
the image is assembled from files, in four steps, each deterministic for the same inputs:

1. ``mmdebstrap`` installs a throwaway *build* root (Debian's essential set plus ``python3``);
   its downloaded ``.deb`` files are kept in a cache outside the work tree, named by version.
2. The *runtime* root is copied out of it package by package: the dependency closure of
   ``RUNTIME_ROOTS`` less ``NOT_AT_RUN_TIME`` (dpkg, the shells, perl, debconf: only maintainer
   scripts use them), each package's files from its dpkg file list, and a distroless-style
   ``/var/lib/dpkg/status.d/<package>`` so scanners still see what is inside. No shell, no pip,
   no compiler ends up in the image.
3. The locked wheels (``requirements.lock``, every hash checked) and the project's wheel are
   installed into ``/usr/local/lib/python3.X/dist-packages`` by the host's pip (``--target``,
   binary wheels only, nothing compiled on the host), then byte-compiled inside the runtime root
   by its own interpreter with hash-based ``.pyc`` files (PEP 552), which hold no timestamps.
4. Every mtime is clamped to ``SOURCE_DATE_EPOCH``, an SPDX SBOM is written into the root and
   beside the layout, and ``umoci`` writes the OCI layout with fixed creation times.

The build is skipped when the digest of its inputs (this script, the lock, the project's sources,
the Debian suite and packages) matches the one recorded beside the last layout.

Usage: ``python tools/image/build.py [--out .image] [--force]`` (``make image``); the result is
``.image/oci`` (tag ``privatevault/operator:<version>``), ``.image/sbom.spdx.json`` and
``.image/build.json`` (inputs digest, image digest, size, build seconds).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IMAGE_NAME = "privatevault/operator"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
# The runtime root: the interpreter with its standard library, and the few data packages that
# name this system (os-release), its services and protocols, time zones and media types.
RUNTIME_ROOTS = ("python3", "base-files", "netbase", "tzdata", "media-types")
# The build root: the essential set, and the runtime packages installed by dpkg.
BUILD_INCLUDE = RUNTIME_ROOTS
# In the closure of RUNTIME_ROOTS only through maintainer scripts and package management.
NOT_AT_RUN_TIME = frozenset(
    {
        "dpkg",
        "debconf",
        "perl-base",
        "dash",
        "bash",
        "coreutils",
        "tar",
        "debianutils",
        "sed",
        "grep",
        "diffutils",
        "findutils",
        "gzip",
        "util-linux",
        "init-system-helpers",
        "libc-bin",
        "readline-common",
        "libreadline8",
        "libncursesw6",
        "libtinfo6",
        "mawk",
    }
)
USER_ID = 65532
USER_NAME = "nonroot"
SBOM_IN_IMAGE = "usr/share/doc/privatevault/sbom.spdx.json"
DEFAULT_EPOCH = 1767225600  # 2026-01-01T00:00:00Z, when SOURCE_DATE_EPOCH is not set
DEB_CACHE = Path(os.environ.get("PV_CACHE", Path.home() / ".cache" / "privatevault")) / "debs"


def say(message: str) -> None:
    print(f"\033[1m==> {message}\033[0m", flush=True)


def run(
    *argv: str | Path, env: dict[str, str] | None = None, input: str | None = None, capture_output: bool = False
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], check=True, text=True, env=env, input=input, capture_output=capture_output
    )


def project_version() -> str:
    with (REPO / "pyproject.toml").open("rb") as handle:
        version: str = tomllib.load(handle)["project"]["version"]
    return version


def source_files() -> Iterator[Path]:
    """What the image is made from, in a fixed order (the inputs digest)."""
    yield Path(__file__).resolve()
    for name in ("requirements.lock", "pyproject.toml", "README.md"):
        yield REPO / name
    for path in sorted((REPO / "operator").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and not any(p.endswith(".egg-info") for p in path.parts):
            yield path


def inputs_digest(epoch: int) -> str:
    digest = hashlib.sha256()
    for path in source_files():
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    digest.update(json.dumps([SUITE, MIRROR, BUILD_INCLUDE, RUNTIME_ROOTS, sorted(NOT_AT_RUN_TIME), epoch]).encode())
    return digest.hexdigest()


# --- step 1: the build root -------------------------------------------------------------------


def build_root(target: Path, epoch: int) -> None:
    DEB_CACHE.mkdir(parents=True, exist_ok=True)
    sources = (
        f"deb {MIRROR} {SUITE} main\ndeb {MIRROR} {SUITE}-updates main\ndeb {SECURITY_MIRROR} {SUITE}-security main\n"
    )
    run(
        "mmdebstrap",
        "--quiet",
        "--mode=root",
        "--variant=essential",
        f"--include={','.join(BUILD_INCLUDE)}",
        "--skip=essential/unlink",
        '--setup-hook=mkdir -p "$1"/var/cache/apt/archives',
        f"--setup-hook=sync-in {DEB_CACHE} /var/cache/apt/archives",
        f"--customize-hook=sync-out /var/cache/apt/archives {DEB_CACHE}",
        SUITE,
        target,
        "-",
        input=sources,
        env={**os.environ, "SOURCE_DATE_EPOCH": str(epoch)},
    )
    for partial in DEB_CACHE.glob("partial"):
        shutil.rmtree(partial, ignore_errors=True)


# --- step 2: the runtime root -----------------------------------------------------------------


def dpkg_status(root: Path) -> dict[str, dict[str, str]]:
    """The installed packages of ``root``: name → its status paragraph's fields (and ``_text``)."""
    packages: dict[str, dict[str, str]] = {}
    for paragraph in (root / "var/lib/dpkg/status").read_text().split("\n\n"):
        if not paragraph.strip():
            continue
        fields: dict[str, str] = {"_text": paragraph.strip() + "\n"}
        key = ""
        for line in paragraph.splitlines():
            if line.startswith((" ", "\t")):
                fields[key] += "\n" + line
            else:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields.get("Status", "").endswith(" installed"):
            packages[fields["Package"]] = fields
    return packages


def depends(fields: dict[str, str]) -> Iterator[str]:
    for key in ("Pre-Depends", "Depends"):
        for clause in fields.get(key, "").split(","):
            # An alternative "a | b": whichever of them is installed is kept (the others are skipped).
            for alternative in clause.split("|"):
                name = re.sub(r"[:\s(].*", "", alternative.strip())
                if name:
                    yield name


def runtime_packages(status: dict[str, dict[str, str]]) -> list[str]:
    wanted: set[str] = set()
    todo = list(RUNTIME_ROOTS)
    if missing := [name for name in RUNTIME_ROOTS if name not in status]:
        raise RuntimeError(f"the build root lacks {', '.join(missing)}: install them there first")
    while todo:
        name = todo.pop()
        if name in wanted or name in NOT_AT_RUN_TIME:
            continue
        if name not in status:
            # A virtual package or an alternative that is not installed: an installed one provides it.
            providers = [p for p, f in status.items() if name in re.split(r"[,\s]+", f.get("Provides", ""))]
            todo.extend(providers[:1])
            continue
        wanted.add(name)
        todo.extend(depends(status[name]))
    return sorted(wanted)


def package_paths(root: Path, name: str, arch: str) -> list[str]:
    info = root / "var/lib/dpkg/info"
    for list_file in (info / f"{name}:{arch}.list", info / f"{name}.list"):
        if list_file.exists():
            return [line for line in list_file.read_text().splitlines() if line and line != "/."]
    raise FileNotFoundError(f"no dpkg file list for {name}")


def merged_usr_links(build: Path, runtime: Path) -> None:
    """/bin, /lib, /lib64, /sbin are links into /usr (merged /usr), made by mmdebstrap, owned by
    no package."""
    for top in sorted(build.iterdir()):
        if top.is_symlink():
            (runtime / top.name).symlink_to(os.readlink(top))
            (runtime / top.name).resolve().mkdir(parents=True, exist_ok=True)


def copy_entry(build: Path, runtime: Path, path: str) -> None:
    source = build / path.lstrip("/")
    if not os.path.lexists(source):
        return  # diverted or removed by a maintainer script
    # Canonical place: through the merged-/usr links, so each file is copied once, under /usr.
    real = Path(os.path.realpath(source.parent)).relative_to(build.resolve()) / source.name
    dest = runtime / real
    if os.path.lexists(dest):
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    mode = source.lstat().st_mode
    if stat.S_ISLNK(mode):
        dest.symlink_to(os.readlink(source))
    elif stat.S_ISDIR(mode):
        dest.mkdir()
        os.chmod(dest, stat.S_IMODE(mode))
    else:
        shutil.copy2(source, dest)


def runtime_root(build: Path, runtime: Path) -> list[dict[str, str]]:
    status = dpkg_status(build)
    names = runtime_packages(status)
    arch = run("dpkg", "--print-architecture", capture_output=True).stdout.strip()
    merged_usr_links(build, runtime)
    for name in names:
        for path in package_paths(build, name, arch):
            copy_entry(build, runtime, path)
    status_d = runtime / "var/lib/dpkg/status.d"
    status_d.mkdir(parents=True, exist_ok=True)
    for name in names:
        (status_d / name).write_text(status[name]["_text"])
    etc = runtime / "etc"
    etc.mkdir(exist_ok=True)
    (etc / "passwd").write_text(
        f"root:x:0:0:root:/root:/usr/sbin/nologin\n{USER_NAME}:x:{USER_ID}:{USER_ID}:{USER_NAME}:/home/{USER_NAME}:/usr/sbin/nologin\n"
    )
    (etc / "group").write_text(f"root:x:0:\n{USER_NAME}:x:{USER_ID}:\n")
    for directory, mode in (("tmp", 0o1777), ("root", 0o700), (f"home/{USER_NAME}", 0o700)):
        (runtime / directory).mkdir(parents=True, exist_ok=True)
        os.chmod(runtime / directory, mode)
    os.chown(runtime / "home" / USER_NAME, USER_ID, USER_ID)
    return [status[name] for name in names]


# --- step 3: the Python packages --------------------------------------------------------------


def python_version(runtime: Path) -> str:
    found = sorted(p.name for p in (runtime / "usr/bin").glob("python3.*") if re.fullmatch(r"python3\.\d+", p.name))
    if len(found) != 1:
        raise RuntimeError(f"expected one python3.X in the runtime root, found {found}")
    return found[0].removeprefix("python")


def locked_paragraph(lock: str, name: str) -> str:
    """One package's pin with its hashes, as written in a lock file."""
    found = re.search(rf"^{re.escape(name)}==.*?(?=^\S|\Z)", (REPO / lock).read_text(), re.MULTILINE | re.DOTALL)
    if found is None:
        raise RuntimeError(f"{name} is not pinned in {lock}: run `make lock`")
    return found.group(0)


def install_python(runtime: Path, work: Path, epoch: int) -> tuple[Path, str]:
    version = python_version(runtime)
    site = runtime / f"usr/local/lib/python{version}/dist-packages"
    wheels = work / "wheels"
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    pip = (sys.executable, "-m", "pip")
    # The project's build backend, pinned with its hashes in the dev lock, in a folder of its own.
    backend = work / "build-backend"
    (work / "build-backend.txt").write_text(locked_paragraph("requirements-dev.lock", "setuptools"))
    run(*pip, "install", "--quiet", "--no-deps", "--require-hashes", "--target", backend,
        "-r", work / "build-backend.txt", env=env)  # fmt: skip
    wheel_env = {**env, "PYTHONPATH": str(backend)}
    run(*pip, "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir", wheels, REPO, env=wheel_env)
    (wheel,) = wheels.glob("privatevault-*.whl")
    target = ("--target", site, "--no-compile", "--only-binary=:all:", "--python-version", version)
    run(*pip, "install", "--quiet", "--no-deps", "--require-hashes", *target, "-r", REPO / "requirements.lock", env=env)
    shutil.rmtree(site / "bin", ignore_errors=True)  # console scripts: see below
    run(*pip, "install", "--quiet", "--no-deps", *target, wheel, env=env)
    # Console scripts carry the host interpreter's path, and direct_url.json the build folder:
    # neither belongs in the image (the entrypoint is `python3 -m privatevault`).
    shutil.rmtree(site / "bin", ignore_errors=True)
    for direct_url in site.glob("*.dist-info/direct_url.json"):
        direct_url.unlink()
    for record in site.glob("*.dist-info/RECORD"):
        kept = [line for line in record.read_text().splitlines() if (site / line.split(",")[0]).exists()]
        record.write_text("".join(f"{line}\n" for line in kept))
    return site, version


def byte_compile(runtime: Path, version: str) -> None:
    """Hash-based .pyc files made by the image's own interpreter: no timestamps in them, and
    valid in a read-only root filesystem."""
    for cache in runtime.rglob("__pycache__"):
        shutil.rmtree(cache)
    run(
        shutil.which("chroot") or "/usr/sbin/chroot",
        runtime,
        "/usr/bin/python3",
        "-I",
        "-m",
        "compileall",
        "-q",
        "-j",
        "1",
        "--invalidation-mode",
        "unchecked-hash",
        f"/usr/lib/python{version}",
        f"/usr/local/lib/python{version}",
        env={"PATH": "/usr/bin", "SOURCE_DATE_EPOCH": "0", "PYTHONHASHSEED": "0"},
    )


# --- step 4: SBOM, timestamps, the OCI layout -------------------------------------------------


def locked_python_packages() -> list[tuple[str, str]]:
    text = (REPO / "requirements.lock").read_text()
    return sorted(re.findall(r"^([A-Za-z0-9_.-]+)==([^\s\\;]+)", text, re.MULTILINE))


def sbom(debs: list[dict[str, str]], site: Path, epoch: int, version: str) -> dict[str, object]:
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    packages: list[dict[str, object]] = []

    def add(spdx_id: str, name: str, pkg_version: str, purl: str, supplier: str, **extra: object) -> None:
        packages.append(
            {
                "SPDXID": spdx_id,
                "name": name,
                "versionInfo": pkg_version,
                "supplier": supplier,
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": False,
                "externalRefs": [
                    {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl}
                ],
                **extra,
            }
        )

    add(
        "SPDXRef-Package-privatevault",
        "privatevault",
        version,
        f"pkg:pypi/privatevault@{version}",
        "Organization: PrivateVault",
        primaryPackagePurpose="APPLICATION",
        licenseDeclared="Apache-2.0",
    )
    for deb in debs:
        name, deb_version, arch = deb["Package"], deb["Version"], deb["Architecture"]
        add(
            f"SPDXRef-Deb-{re.sub(r'[^A-Za-z0-9.-]', '-', name)}",
            name,
            deb_version,
            f"pkg:deb/debian/{name}@{deb_version}?arch={arch}&distro=debian-12",
            "Organization: Debian",
        )
    installed = {re.sub(r"[-_.]+", "-", p.name.split("-")[0]).lower(): p for p in site.glob("*.dist-info")}
    for name, pkg_version in locked_python_packages():
        if re.sub(r"[-_.]+", "-", name).lower() not in installed:
            continue  # locked for another platform or Python (an environment marker)
        add(
            f"SPDXRef-PyPI-{re.sub(r'[^A-Za-z0-9.-]', '-', name)}",
            name,
            pkg_version,
            f"pkg:pypi/{name}@{pkg_version}",
            "NOASSERTION",
        )
    body = json.dumps(packages, sort_keys=True).encode()
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{IMAGE_NAME}:{version}",
        # Derived from the content, not random: the same image has the same SBOM.
        "documentNamespace": f"https://privatevault.io/spdx/operator-{version}-{hashlib.sha256(body).hexdigest()}",
        "creationInfo": {"created": created, "creators": ["Tool: privatevault-tools-image-build"]},
        "packages": packages,
        "relationships": [
            {
                "spdxElementId": "SPDXRef-DOCUMENT",
                "relationshipType": "DESCRIBES",
                "relatedSpdxElement": "SPDXRef-Package-privatevault",
            },
            *(
                {
                    "spdxElementId": "SPDXRef-Package-privatevault",
                    "relationshipType": "DEPENDS_ON",
                    "relatedSpdxElement": p["SPDXID"],
                }
                for p in packages[1:]
            ),
        ],
    }


def walk(root: Path) -> Iterable[Path]:
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            yield Path(directory) / name


def clamp_times(root: Path, epoch: int) -> None:
    for path in walk(root):
        os.utime(path, (epoch, epoch), follow_symlinks=False)
    os.utime(root, (epoch, epoch))


def oci_layout(runtime: Path, layout: Path, tag: str, epoch: int) -> None:
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    image = f"{layout}:{tag}"
    run("umoci", "init", "--layout", layout)
    run("umoci", "new", "--image", image)
    history = ("--history.created", created, "--history.created_by", "tools/image/build.py")
    run("umoci", "insert", "--image", image, *history, "--history.comment", "runtime root", runtime, "/")
    run(
        "umoci",
        "config",
        "--image",
        image,
        "--created",
        created,
        *history,
        "--history.comment",
        "config",
        "--config.user",
        f"{USER_ID}:{USER_ID}",
        "--config.workingdir",
        "/",
        "--config.entrypoint",
        "/usr/bin/python3",
        "--config.entrypoint",
        "-m",
        "--config.entrypoint",
        "privatevault",
        "--config.cmd",
        "operator",
        "--config.cmd",
        "run",
        "--config.env",
        "PYTHONUNBUFFERED=1",
        "--config.env",
        "PYTHONDONTWRITEBYTECODE=1",
        "--config.env",
        f"HOME=/home/{USER_NAME}",
        "--config.env",
        "PATH=/usr/local/bin:/usr/bin",
        "--config.label",
        f"org.opencontainers.image.version={tag}",
        "--config.label",
        "org.opencontainers.image.title=PrivateVault operator",
        "--config.label",
        "org.opencontainers.image.licenses=Apache-2.0",
        "--config.label",
        f"org.opencontainers.image.created={created}",
    )
    run("umoci", "gc", "--layout", layout)


def manifest_digest(layout: Path) -> str:
    index = json.loads((layout / "index.json").read_text())
    (manifest,) = index["manifests"]
    digest: str = manifest["digest"]
    return digest


def tree_size(root: Path) -> int:
    return sum(p.lstat().st_size for p in walk(root) if p.is_file() and not p.is_symlink())


def assemble(build_dir: Path, runtime: Path, work: Path, epoch: int) -> dict[str, object]:
    """Steps 2 to 4 but the layout: the runtime root from ``build_dir``'s packages, the Python
    packages, byte code, SBOM, clamped times. The Containerfile runs this with ``/`` as the build root."""
    say("runtime root: " + ", ".join(RUNTIME_ROOTS) + " and what they need at run time")
    runtime.mkdir(parents=True)
    debs = runtime_root(build_dir, runtime)
    say("Python packages from requirements.lock (hashes checked) and the project's wheel")
    site, py_version = install_python(runtime, work, epoch)
    byte_compile(runtime, py_version)
    document = sbom(debs, site, epoch, project_version())
    (runtime / SBOM_IN_IMAGE).parent.mkdir(parents=True, exist_ok=True)
    (runtime / SBOM_IN_IMAGE).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    clamp_times(runtime, epoch)
    return document


def count(document: dict[str, object], purl_prefix: str) -> int:
    packages = document["packages"]
    assert isinstance(packages, list)
    return sum(ref["referenceLocator"].startswith(purl_prefix) for p in packages for ref in p["externalRefs"])


def build(out: Path, *, force: bool) -> dict[str, object]:
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", DEFAULT_EPOCH))
    digest = inputs_digest(epoch)
    record = out / "build.json"
    if not force and record.exists() and (out / "oci" / "index.json").exists():
        previous: dict[str, object] = json.loads(record.read_text())
        if previous.get("inputs") == digest:
            say(f"image up to date ({previous['digest']}); inputs {digest[:12]}")
            return previous
    started = time.monotonic()
    version = project_version()
    work = out / "work"
    for stale in (work, out / "oci"):
        shutil.rmtree(stale, ignore_errors=True)
    work.mkdir(parents=True)
    build_dir, runtime = work / "build-root", work / "rootfs"
    say(f"build root: mmdebstrap {SUITE} essential + {', '.join(BUILD_INCLUDE)} (debs cached in {DEB_CACHE})")
    build_root(build_dir, epoch)
    document = assemble(build_dir, runtime, work, epoch)
    shutil.rmtree(build_dir)
    (out / "sbom.spdx.json").write_text((runtime / SBOM_IN_IMAGE).read_text())
    say(f"OCI layout: {out / 'oci'} ({IMAGE_NAME}:{version})")
    oci_layout(runtime, out / "oci", version, epoch)
    result: dict[str, object] = {
        "inputs": digest,
        "digest": manifest_digest(out / "oci"),
        "image": f"{IMAGE_NAME}:{version}",
        "tag": version,
        "rootfs_bytes": tree_size(runtime),
        "layout_bytes": tree_size(out / "oci"),
        "debian_packages": count(document, "pkg:deb/"),
        "python_packages": count(document, "pkg:pypi/"),
        "build_seconds": round(time.monotonic() - started, 1),
        "source_date_epoch": epoch,
    }
    shutil.rmtree(work)
    record.write_text(json.dumps(result, indent=2) + "\n")
    say(f"built {result['image']} {result['digest']} in {result['build_seconds']} s")
    return result


def check_reproducible(out: Path, result: dict[str, object]) -> dict[str, object]:
    """Build a second time from the same inputs, apart from the first, and require the same
    digest. Recorded in build.json, so it runs once per set of inputs."""
    done = result.get("reproduced")
    if isinstance(done, dict) and done.get("inputs") == result["inputs"]:
        return result
    say("second build from the same inputs: the digest must be the same")
    second = build(out / "check", force=True)
    shutil.rmtree(out / "check")
    if second["digest"] != result["digest"]:
        raise SystemExit(f"not reproducible: {result['digest']} then {second['digest']} from the same inputs")
    result["reproduced"] = {
        "inputs": result["inputs"],
        "digest": second["digest"],
        "build_seconds": second["build_seconds"],
    }
    (out / "build.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / ".image")
    parser.add_argument("--force", action="store_true", help="build even when the inputs are unchanged")
    parser.add_argument("--check-reproducible", action="store_true", help="then build again and compare the digests")
    parser.add_argument(
        "--rootfs-from", type=Path, metavar="ROOT",
        help="only assemble the runtime root into --out from the packages installed in ROOT (the Containerfile: /)",
    )  # fmt: skip
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("building the image needs root (mmdebstrap --mode=root, chroot, file owners in the layer)")
    out = args.out.resolve()
    if args.rootfs_from:
        epoch = int(os.environ.get("SOURCE_DATE_EPOCH", DEFAULT_EPOCH))
        work = Path(tempfile.mkdtemp(prefix="privatevault-image-"))
        assemble(args.rootfs_from, out, work, epoch)
        shutil.rmtree(work)
        return
    result = build(out, force=args.force)
    if args.check_reproducible:
        check_reproducible(out, result)


if __name__ == "__main__":
    main()
