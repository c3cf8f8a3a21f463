#!/usr/bin/env bash
# Builds litewitness, the independent C2SP tlog-witness the interop tests run against (the Go
# module filippo.io/torchwood, pinned below), into $PV_CACHE/bin/litewitness-<version>/, like the
# control plane: a warm run finds it and builds nothing. `--print-path` prints the binary's path.
set -euo pipefail
version=v0.6.1
cache=${PV_CACHE:-$HOME/.cache/privatevault}
dir="$cache/bin/litewitness-$version"
if [[ "${1:-}" == "--print-path" ]]; then
  echo "$dir/litewitness"; exit 0
fi
if [[ -x "$dir/litewitness" ]]; then
  echo "litewitness cached: $dir/litewitness"; exit 0
fi
mkdir -p "$cache"
exec 9>"$cache/.litewitness.lock"
flock 9
if [[ -x "$dir/litewitness" ]]; then
  echo "litewitness cached: $dir/litewitness"; exit 0
fi
echo "building litewitness $version (filippo.io/torchwood; about a minute on 2 cores)"
tmp=$(mktemp -d "$cache/.litewitness.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOBIN="$tmp" go install -trimpath "filippo.io/torchwood/cmd/litewitness@$version"
mkdir -p "$dir"
mv "$tmp/litewitness" "$dir/litewitness"
echo "litewitness built: $dir/litewitness"
