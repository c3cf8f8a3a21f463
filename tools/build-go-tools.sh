#!/usr/bin/env bash
# Builds the Go tools the chart's tests use, once, into the cache the control plane uses:
#   helm         helm.sh/helm/v3/cmd/helm at the version pinned in tools/helm/go.mod,
#                cached as $PV_CACHE/bin/helm-<version>/helm
#   argo-health  tools/argo-health: Argo CD's Lua engine (gopher-lua) running the health checks
#                in gitops/argocd/health, cached by a digest of its sources
# Usage: tools/build-go-tools.sh [--print] [helm|argo-health]...   (default: all)
# With --print, the path of each binary is printed on stdout (built first when missing).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${PV_CACHE:-$HOME/.cache/privatevault}
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false

print=0
if [[ "${1:-}" == "--print" ]]; then print=1; shift; fi
tools=("$@")
[[ ${#tools[@]} -gt 0 ]] || tools=(helm argo-health)

path_of() { # tool
  case "$1" in
    helm)
      local version
      version=$(cd "$here/helm" && go list -m -f '{{.Version}}' helm.sh/helm/v3)
      echo "$cache/bin/helm-$version/helm" ;;
    argo-health)
      local digest
      digest=$(cd "$here/argo-health" && cat go.mod go.sum ./*.go | sha256sum | cut -c1-16)
      echo "$cache/bin/argo-health-$digest/argo-health" ;;
    *) echo "unknown tool $1 (helm, argo-health)" >&2; exit 2 ;;
  esac
}

build() { # tool out
  local tool=$1 out=$2 dir pkg ldflags="-s -w"
  case "$tool" in
    helm)
      dir="$here/helm"; pkg=helm.sh/helm/v3/cmd/helm
      local version
      version=$(cd "$dir" && go list -m -f '{{.Version}}' helm.sh/helm/v3)
      ldflags+=" -X helm.sh/helm/v3/internal/version.version=$version"
      # As helm's Makefile does: the Kubernetes version `helm template` and `helm lint` assume
      # is the one of its client-go (major + 1: client-go v0.N is Kubernetes 1.N).
      local kube major minor
      kube=$(cd "$dir" && go list -m -f '{{.Version}}' k8s.io/client-go)
      kube=${kube#v}; major=$(( ${kube%%.*} + 1 )); minor=${kube#*.}; minor=${minor%%.*}
      for pkg_var in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
        ldflags+=" -X $pkg_var.k8sVersionMajor=$major -X $pkg_var.k8sVersionMinor=$minor"
      done ;;
    argo-health)
      dir="$here/argo-health"; pkg=. ;;
  esac
  local t0=$SECONDS
  echo "building $tool from $pkg (a cold build of helm takes about 6 minutes on 2 cores)" >&2
  mkdir -p "$(dirname "$out")"
  (cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$out.tmp.$$" "$pkg")
  mv "$out.tmp.$$" "$out"
  echo "$tool built in $((SECONDS - t0))s: $out" >&2
}

mkdir -p "$cache"
for tool in "${tools[@]}"; do
  out=$(path_of "$tool")
  if [[ ! -x "$out" ]]; then
    # One build at a time per cache, as for the control plane.
    exec 9>"$cache/.build-$tool.lock"
    flock 9
    [[ -x "$out" ]] || build "$tool" "$out"
    exec 9>&-
  elif [[ $print -eq 0 ]]; then
    echo "$tool cached: $out"
  fi
  [[ $print -eq 0 ]] || echo "$out"
done
