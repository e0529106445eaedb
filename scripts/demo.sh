#!/usr/bin/env bash
# The demo behind `make run`: the example model trained, gated, signed, packaged and rolled out on
# this machine -- shadow, canary steps, a release manager's approval, promotion.
set -euo pipefail
cd "$(dirname "$0")/.."
LB="$(realpath "${VENV:-.venv}")/bin/launchbay"
# The example is a model repository of its own: launchbay runs there as in any user's repository.
cd examples/fraud-detector
export LAUNCHBAY_USER="${LAUNCHBAY_USER:-data-scientist}"   # the author of the releases below
TRAFFIC=50   # demo clients: requests per second through the gateway while a rollout runs

"$LB" keys init
# Release managers sign their approvals with keys of their own (in ~/.config/launchbay/approvers/);
# the project's config lists their public keys.
"$LB" keys approver alice --public-key approvers/alice.pub
"$LB" keys approver bob --public-key approvers/bob.pub
if ! "$LB" status --json 2>/dev/null | grep -q '"phase": "promoted"'; then
  echo "== 1. this week's data: the first version becomes the champion and serves all traffic"
  "$LB" run --traffic "$TRAFFIC" --data data/transactions.parquet
fi
echo "== 2. next week's data: a new version, rolled out against the one serving"
"$LB" run --traffic "$TRAFFIC" --data data/next-week.parquet
echo "== 3. a release manager (not the author) approves: promotion"
"$LB" approve fraud-detector --as alice
"$LB" status
"$LB" history fraud-detector
echo "The gateway keeps serving (see \`launchbay status\`); on-call: \`launchbay rollback fraud-detector\`."
echo "Stop the local processes with: (cd examples/fraud-detector && launchbay down)"
