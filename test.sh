#!/usr/bin/env bash
# The full test suite. Developers run it; CI (.ci/run) runs exactly this.
#   ./test.sh            everything
#   ./test.sh -short     skips the end-to-end tests that start whole systems
# Tests that touch data use the embedded FerretDB server, or a real MongoDB
# when MONGODB_URI is set. Everything that speaks to Consul or Prometheus runs
# against the real servers, which this script builds from the Go module proxy
# once per machine (internal/engines/build.sh; cached under
# ~/.cache/campus/engines); CONSUL_HTTP_ADDR points the shared-agent suites at
# an external agent instead.
set -euo pipefail
cd "$(dirname "$0")"

# The browser tests (e2e/) drive Debian's Chromium. Install it when it is
# missing, so that this one command works on a fresh machine. Without it the
# browser tests FAIL (they never skip by themselves); CAMPUS_SKIP_BROWSER=1
# skips them on purpose.
if [[ " $* " != *" -short "* && "${CAMPUS_SKIP_BROWSER:-}" != 1 && -z "${CAMPUS_CHROMIUM:-}" && ! -x /usr/bin/chromium ]]; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "== installing Chromium for the browser tests (apt-get install chromium)"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then
      echo "!!! COULD NOT INSTALL CHROMIUM: the browser tests in e2e/ will FAIL." >&2
    fi
  else
    echo "!!! /usr/bin/chromium IS MISSING and this script cannot install it (it needs root and apt-get)." >&2
    echo "!!! Install it (sudo apt-get install -y chromium), or the browser tests in e2e/ will FAIL." >&2
    echo "!!! To skip them on purpose: CAMPUS_SKIP_BROWSER=1 ./test.sh" >&2
  fi
fi

echo "== real engines: Consul v1.16.3 and Prometheus (built once per machine, then cached)"
if ! engines=$(internal/engines/build.sh consul prometheus); then
  echo "!!! BUILDING THE REAL CONSUL OR PROMETHEUS FAILED (see above): the tests that need them cannot run." >&2
  exit 1
fi
for line in $engines; do
  name=${line%%=*} path=${line#*=}
  case $name in
    consul) export CAMPUS_CONSUL_BIN=$path ;;
    prometheus) export CAMPUS_PROMETHEUS_BIN=$path ;;
  esac
  echo "   $name: $path ($("$path" --version </dev/null 2>&1 | head -1))"
done

echo "== go vet"
go vet ./...

# Packages whose code is mostly concurrency run under the race detector.
race_pkgs=(./registry/... ./proxy/... ./deploy/... ./internal/loadgen/... ./certs/...)
echo "== go test -race ${race_pkgs[*]}"
go test -count=1 -race "$@" "${race_pkgs[@]}"

other_pkgs=$(go list ./... | grep -v -E '/(registry|proxy|deploy|internal/loadgen|certs)(/|$)')
echo "== go test (the rest)"
# shellcheck disable=SC2086
go test -count=1 -timeout 30m "$@" $other_pkgs
