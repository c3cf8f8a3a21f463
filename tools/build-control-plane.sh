#!/usr/bin/env bash
# Builds the test bench's control plane from Go modules: kube-apiserver, kube-controller-manager
# and kubectl from k8s.io/kubernetes (tools/k8s), etcd from go.etcd.io/etcd/server/v3 (tools/etcd).
#
# Binaries land in $PV_CACHE/bin/<component>-<version>/, keyed by the version pinned in each
# go.mod, so a warm run finds them and builds nothing. The default cache sits outside the work
# tree ($HOME/.cache/privatevault) so that fresh clones (CI) on the same machine reuse it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${PV_CACHE:-$HOME/.cache/privatevault}
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false

mod_version() { # module-dir module-path
  (cd "$1" && go list -m -f '{{.Version}}' "$2")
}

kube_version=$(mod_version "$here/k8s" k8s.io/kubernetes)
etcd_version=$(mod_version "$here/etcd" go.etcd.io/etcd/server/v3)
kube_dir="$cache/bin/kubernetes-$kube_version"
etcd_dir="$cache/bin/etcd-$etcd_version"

if [[ "${1:-}" == "--print-dirs" ]]; then
  echo "$kube_dir"; echo "$etcd_dir"; exit 0
fi

# One build at a time per cache: a second run (another clone, a parallel `make setup`) waits for
# the first and then finds its binaries, instead of building the same thing twice on the same cores.
mkdir -p "$cache"
exec 9>"$cache/.build.lock"
if ! flock -n 9; then
  echo "another build of the control plane is running; waiting for it ($cache/.build.lock)"
  flock 9
fi

started=$SECONDS
step=0
total=4
build() { # dir out package ldflags
  local dir=$1 out=$2 pkg=$3 ldflags=$4 name
  name=$(basename "$out")
  step=$((step + 1))
  if [[ -x "$out" ]]; then
    printf '[%d/%d] %-24s cached (%s)\n' "$step" "$total" "$name" "$out"
    return
  fi
  printf '[%d/%d] %-24s building from %s (a cold build takes several minutes on 2 cores)\n' \
    "$step" "$total" "$name" "$pkg"
  local t0=$SECONDS
  # Show that work goes on: a line every 30 s while the compiler runs.
  ( while sleep 30; do printf '      … %s still building, %ds\n' "$name" $((SECONDS - t0)); done ) &
  local ticker=$!
  mkdir -p "$(dirname "$out")"
  if ! (cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$out.tmp" "$pkg"); then
    kill "$ticker" 2>/dev/null; rm -f "$out.tmp"
    echo "build of $name failed" >&2; exit 1
  fi
  kill "$ticker" 2>/dev/null || true
  mv "$out.tmp" "$out"
  printf '      %s built in %ds, %s\n' "$name" $((SECONDS - t0)) "$(du -h "$out" | cut -f1)"
}

# The version ldflags make `kubectl version` and /version report the real release.
minor=${kube_version#v1.}; minor=${minor%%.*}
if [[ -x "$etcd_dir/etcd" && -x "$kube_dir/kube-apiserver" && -x "$kube_dir/kube-controller-manager" \
      && -x "$kube_dir/kubectl" ]]; then
  echo "control plane binaries cached: $kube_dir, $etcd_dir"
  exit 0
fi

# The release time from the module proxy stands in for the build date, so builds are reproducible.
build_date=$(cd "$here/k8s" && go mod download -json "k8s.io/kubernetes@$kube_version" \
  | python3 -c 'import json,sys; print(json.load(open(json.load(sys.stdin)["Info"])).get("Time", "1970-01-01T00:00:00Z"))')
kube_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  kube_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

build "$here/etcd" "$etcd_dir/etcd" go.etcd.io/etcd/server/v3 "-s -w"
build "$here/k8s" "$kube_dir/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver "$kube_ldflags"
build "$here/k8s" "$kube_dir/kube-controller-manager" k8s.io/kubernetes/cmd/kube-controller-manager "$kube_ldflags"
build "$here/k8s" "$kube_dir/kubectl" k8s.io/kubernetes/cmd/kubectl "$kube_ldflags"
echo "control plane ready in $((SECONDS - started))s: $kube_dir, $etcd_dir"
