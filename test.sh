#!/usr/bin/env bash
# The full test suite. Developers run it; CI (.ci/run) runs exactly this.
#   ./test.sh            everything
#   ./test.sh -short     skips the end-to-end tests that start whole systems
# Tests that touch data use the embedded FerretDB server, or a real MongoDB
# when MONGODB_URI is set. The Consul contract suite also runs against a real
# agent when CONSUL_HTTP_ADDR is set.
set -euo pipefail
cd "$(dirname "$0")"

echo "== go vet"
go vet ./...

# Packages whose code is mostly concurrency run under the race detector.
race_pkgs=(./registry/... ./proxy/... ./deploy/... ./internal/loadgen/...)
echo "== go test -race ${race_pkgs[*]}"
go test -count=1 -race "$@" "${race_pkgs[@]}"

other_pkgs=$(go list ./... | grep -v -E '/(registry|proxy|deploy|internal/loadgen)(/|$)')
echo "== go test (the rest)"
# shellcheck disable=SC2086
go test -count=1 -timeout 30m "$@" $other_pkgs
