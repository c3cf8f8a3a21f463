#!/usr/bin/env bash
# Builds helm from its Go module (helm.sh/helm/v3/cmd/helm at the version pinned in tools/helm/go.mod)
# into $PV_CACHE/bin/helm-<version>/helm (default cache: $HOME/.cache/privatevault), once, like the
# control plane. With --print, prints the binary's path on stdout (building it first if missing).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${PV_CACHE:-$HOME/.cache/privatevault}
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false

version=$(cd "$here/helm" && go list -m -f '{{.Version}}' helm.sh/helm/v3)
out="$cache/bin/helm-$version/helm"

if [[ ! -x "$out" ]]; then
  # One build at a time per cache, as for the control plane.
  mkdir -p "$cache"
  exec 9>"$cache/.build-helm.lock"
  flock 9
fi
if [[ ! -x "$out" ]]; then
  t0=$SECONDS
  echo "building helm $version from helm.sh/helm/v3/cmd/helm (a cold build takes about 6 minutes on 2 cores)" >&2
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
  # As helm's Makefile does: the Kubernetes version `helm template` and `helm lint` assume is the
  # one of its client-go (client-go v0.N is Kubernetes 1.N).
  kube=$(cd "$here/helm" && go list -m -f '{{.Version}}' k8s.io/client-go)
  kube=${kube#v}; major=$(( ${kube%%.*} + 1 )); minor=${kube#*.}; minor=${minor%%.*}
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldflags+=" -X $pkg.k8sVersionMajor=$major -X $pkg.k8sVersionMinor=$minor"
  done
  mkdir -p "$(dirname "$out")"
  (cd "$here/helm" && go build -trimpath -ldflags "$ldflags" -o "$out.tmp.$$" helm.sh/helm/v3/cmd/helm)
  mv "$out.tmp.$$" "$out"
  echo "helm built in $((SECONDS - t0))s: $out" >&2
elif [[ "${1:-}" != "--print" ]]; then
  echo "helm cached: $out"
fi
if [[ "${1:-}" == "--print" ]]; then echo "$out"; fi
