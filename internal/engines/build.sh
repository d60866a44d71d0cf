#!/usr/bin/env bash
# Builds the real engines the test suite runs against, from the Go module proxy alone, and caches
# them per machine (outside the clone, so a fresh clone on the same machine reuses them):
#
#   consul      v1.16.3, the last MPL-2.0 release (every later LICENSE says Business Source License)
#   prometheus  the version of github.com/prometheus/prometheus in this repository's go.mod (Apache-2.0)
#
# usage: internal/engines/build.sh [consul|prometheus]...   (default: both)
# Prints, last, one line per engine: NAME=PATH. Exits non-zero, with a message naming the step, on any
# failure. Idempotent: an engine whose binary is in the cache is not rebuilt.
#
# Cache: $CAMPUS_ENGINES (default ${XDG_CACHE_HOME:-$HOME/.cache}/campus/engines)/NAME-VERSION/NAME.
#
# Why the Consul recipe: `go install github.com/hashicorp/consul@v1.16.3` is refused because its go.mod
# replaces its in-repo submodules (api, sdk, proto-public, envoyextensions, troubleshoot) with ./paths
# that the module zip does not contain. So: download the module, copy it somewhere writable, drop those
# replace lines (the submodules then come from the proxy at the versions go.mod requires), and build.
# The checksum database does not know envoyextensions v0.4.1; its hashes are taken from the go.sum of
# a sibling submodule that the checksum database did verify, rather than turning verification off.
set -euo pipefail

CONSUL_VERSION=v1.16.3
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${CAMPUS_ENGINES:-${XDG_CACHE_HOME:-$HOME/.cache}/campus/engines}
export GOTOOLCHAIN=local CGO_ENABLED=0
GO=${GO:-go}

fail() { echo "engines: $*" >&2; exit 1; }
say() { echo "engines: $*" >&2; }

license_of() { # DIR -> MPL-2.0 | BUSL | unknown
  if grep -q 'Business Source License' "$1/LICENSE" 2>/dev/null; then echo BUSL
  elif grep -q 'Mozilla Public License' "$1/LICENSE" 2>/dev/null; then echo MPL-2.0
  elif grep -q 'Apache License' "$1/LICENSE" 2>/dev/null; then echo Apache-2.0
  else echo unknown; fi
}

moddir() { # MODULE@VERSION -> module dir (downloads it); run where go.sum applies
  local j
  j=$("$GO" mod download -json "$1" 2>/dev/null) || true
  [[ -n $j ]] || return 1
  if echo "$j" | grep -q '"Error"'; then return 1; fi
  echo "$j" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'
}

build_consul() {
  local out=$CACHE/consul-$CONSUL_VERSION
  if [[ -x $out/consul ]] && "$out/consul" version >/dev/null 2>&1; then echo "consul=$out/consul"; return; fi
  local t0=$SECONDS work src dir
  say "building consul $CONSUL_VERSION into $out (once per machine; about 8 minutes on 2 cores)"
  work=$CACHE/consul-$CONSUL_VERSION.build
  rm -rf "$work"; mkdir -p "$work"
  dir=$(cd "$work" && moddir "github.com/hashicorp/consul@$CONSUL_VERSION") || fail "consul: go mod download github.com/hashicorp/consul@$CONSUL_VERSION failed (is the Go module proxy reachable?)"
  [[ $(license_of "$dir") == MPL-2.0 ]] || fail "consul: the LICENSE of $CONSUL_VERSION is not MPL-2.0; refusing to build it"
  src=$work/src
  cp -r "$dir" "$src"; chmod -R u+w "$src"
  cd "$src"
  local m v d n inrepo
  # The in-repo replaces: lines like "github.com/hashicorp/consul/api => ./api" (in a block or not).
  mapfile -t inrepo < <(sed -n -E 's/^(replace)?[[:space:]]*([^[:space:]]+)[[:space:]]+=>[[:space:]]+\.\/.*/\2/p' go.mod)
  [[ ${#inrepo[@]} -gt 0 ]] || fail "consul: found no in-repo replace directives to drop (has the recipe changed?)"
  declare -A ver sumdir
  for m in "${inrepo[@]}"; do
    "$GO" mod edit -dropreplace="$m"
    ver[$m]=$(sed -n -E "s#^(require)?[[:space:]]*${m//./\\.}[[:space:]]+(v[^[:space:]]+).*#\\2#p" go.mod | head -1)
    [[ -n ${ver[$m]} ]] || fail "consul: go.mod requires no version of $m"
  done
  # Download each submodule; those the checksum database refuses get their go.sum lines from the
  # go.sum of a sibling that it verified.
  local pending=("${inrepo[@]}") still round
  for round in 1 2; do
    still=()
    for m in "${pending[@]}"; do
      v=${ver[$m]}
      if d=$(moddir "$m@$v") && [[ -n $d ]]; then
        sumdir[$m]=$d
        [[ $(license_of "$d") == MPL-2.0 ]] || fail "consul: submodule $m@$v is not MPL-2.0 ($(license_of "$d"))"
      else still+=("$m"); fi
    done
    pending=("${still[@]}")
    [[ ${#pending[@]} -eq 0 ]] && break
    for m in "${pending[@]}"; do
      v=${ver[$m]}; n=0
      for d in "${sumdir[@]}"; do
        while read -r line; do grep -qxF "$line" go.sum || { echo "$line" >>go.sum; n=$((n + 1)); }; done < <(grep -E "^$m $v(/go.mod)? h1:" "$d/go.sum" 2>/dev/null | sort -u)
      done
      say "consul: $m@$v is unknown to the checksum database; took $n go.sum line(s) from verified siblings"
    done
  done
  [[ ${#pending[@]} -eq 0 ]] || fail "consul: cannot download or verify: ${pending[*]}"
  mkdir -p "$out"
  nice -n 10 "$GO" build -mod=mod -buildvcs=false -trimpath -o "$out/consul.tmp" . || fail "consul: go build failed (see above)"
  mv "$out/consul.tmp" "$out/consul"
  cp "$src/LICENSE" "$out/LICENSE"
  cd "$ROOT"; rm -rf "$work"
  "$out/consul" version >/dev/null || fail "consul: the built binary does not run"
  say "consul built in $((SECONDS - t0)) s"
  echo "consul=$out/consul"
}

build_prometheus() {
  local v
  v=$(cd "$ROOT" && "$GO" list -m -f '{{.Version}}' github.com/prometheus/prometheus) || fail "prometheus: cannot read its version from go.mod"
  local out=$CACHE/prometheus-$v
  if [[ -x $out/prometheus ]] && "$out/prometheus" --version >/dev/null 2>&1; then echo "prometheus=$out/prometheus"; return; fi
  local t0=$SECONDS
  say "building prometheus $v into $out (once per machine; 10 to 25 minutes on 2 cores)"
  mkdir -p "$out"
  (cd "$out" && GOBIN=$out nice -n 10 "$GO" install -trimpath "github.com/prometheus/prometheus/cmd/prometheus@$v") || fail "prometheus: go install github.com/prometheus/prometheus/cmd/prometheus@$v failed (see above)"
  "$out/prometheus" --version >/dev/null || fail "prometheus: the built binary does not run"
  say "prometheus built in $((SECONDS - t0)) s"
  echo "prometheus=$out/prometheus"
}

engines=("$@"); [[ ${#engines[@]} -gt 0 ]] || engines=(consul prometheus)
for e in "${engines[@]}"; do
  case $e in
    consul) build_consul ;;
    prometheus) build_prometheus ;;
    *) fail "unknown engine $e (want consul or prometheus)" ;;
  esac
done
