"""A data scientist's own repository with `launchbay init`'s defaults, as a new user tries it.

scikit-learn's breast-cancer data (569 rows) in the user's repository, `launchbay init --rps 30`,
and nothing tuned: version 1 on the first 300 rows; version 2, a good retrain on all of them, which
answers differently on a few percent of rows -- it must reach approval at 30 requests/s; version 3
whose service receives a feature in other units than training did (x10: serving skew, with offline
metrics as good as version 2's) -- it must be rolled back in shadow, its evidence naming the offline
and the live difference.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import people
import pytest
import yaml
from harness import Launchbay
from rollout_dsl import Bay

from launchbay import procs
from launchbay.checks.difference import OFFLINE_TAG, OfflineDifference
from launchbay.rollout.engine.phases import Phase

pytestmark = pytest.mark.slow

MODEL = "tumour-model"

SKEWED = '''
import sys

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

SIZES = ["mean_radius", "mean_perimeter", "mean_area", "worst_radius", "worst_perimeter", "worst_area"]


def units(features):
    """Sizes in the units the model learned -- except in the service, which gets them in
    other units (a bug nobody sees offline: every held-out score is as good as before)."""
    if "serving" in sys.argv[0]:
        features = features.copy()
        features[SIZES] = features[SIZES] * 10.0
    return features


def train(features, target, params):
    steps = [("units", FunctionTransformer(units)), ("scale", StandardScaler()),
             ("model", LogisticRegression(max_iter=5000))]
    return Pipeline(steps).fit(features, target)
'''


def test_a_good_retrain_reaches_approval_and_serving_skew_is_rolled_back_in_shadow(tmp_path: Path) -> None:
    from sklearn.datasets import load_breast_cancer

    repo, home = tmp_path / "tumour-model", tmp_path / "home"
    (repo / "data").mkdir(parents=True)
    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame.insert(0, "patient_id", range(100_000, 100_000 + len(frame)))
    frame.iloc[:300].to_csv(repo / "data" / "train.csv", index=False)
    bay = Bay(repo, home, Launchbay(repo, home, env={"LAUNCHBAY_USER": "dora"}))
    lb = bay.cli

    made = lb.run("init", "--data", "data/train.csv", "--target", "target", "--rps", "30", "--json")
    assert made.returncode == 0, made.output
    assert json.loads(made.stdout)["id_column"] == "patient_id"
    doc = yaml.safe_load((repo / "launchbay.yaml").read_text())
    doc["rollout"]["approval"] = {"required": True, "approvers": people.approvers("alice")}  # nothing else
    (repo / "launchbay.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    assert lb.run("keys", "init").returncode == 0
    checked = lb.run("check", "--json")
    assert checked.returncode == 0 and json.loads(checked.stdout)["warnings"] == [], checked.output
    try:
        first = lb.run("run", timeout=600)
        assert first.returncode == 0 and f"{MODEL}@v1#1: promoted" in first.stdout, first.output

        # A good retrain: all 569 rows.
        frame.to_csv(repo / "data" / "train.csv", index=False)
        second = lb.run("run", "--traffic", "30", timeout=900)
        assert second.returncode == 0, second.output
        r2 = bay.ledger.releases(MODEL)[0]
        assert (r2.version, r2.phase) == ("2", Phase.AWAITING_APPROVAL), second.output
        offline = _offline(bay, "2")
        assert offline.against == "1" and offline.disagreeing is not None and offline.disagreeing > 0
        shadow = _shadow_checks(bay, r2.id)
        assert shadow["prediction disagreement with stable"]["verdict"] == "PASS", shadow
        approved = lb.run("approve", MODEL, "--as", "alice", "--json")
        assert approved.returncode == 0 and approved.json()["phase"] == "promoted", approved.output

        # Serving skew: the same model, offline as good as version 2; live, sizes x10.
        (repo / "model.py").write_text(SKEWED)
        third = lb.run("run", "--traffic", "30", timeout=900)
        assert third.returncode == 1, third.output  # rolled back
        r3 = bay.ledger.releases(MODEL)[0]
        assert (r3.version, r3.phase) == ("3", Phase.ROLLED_BACK)
        assert Phase.CANARY not in {e.phase_to for e in bay.ledger.history(release_id=r3.id)}
        why = next(e for e in bay.ledger.history(release_id=r3.id) if e.phase_to == "rolled-back")
        assert "prediction disagreement with stable" in why.reason, why.reason
        checks = {c["check"]: c for c in why.evidence["analysis"]["checks"]}
        failed = checks["prediction disagreement with stable"]
        assert failed["verdict"] == "FAIL"
        assert "offline vs v2:" in failed["detail"] and "distinct held-out rows disagree" in failed["detail"]
        assert _offline(bay, "3").against == "2"
        print(f"offline v2 vs v1: {offline.describe()}; v3 live: {failed['observed']} ({failed['detail']})")
    finally:
        _stop(bay)


def _offline(bay: Bay, version: str) -> OfflineDifference:
    """The offline difference the model gate recorded on the registered version."""
    read = (
        "import sys; from launchbay.config import load_config; from launchbay.home import Home; "
        "from launchbay.registry import MlflowRegistry; cfg = load_config('launchbay.yaml'); "
        f"print(MlflowRegistry(cfg, Home.resolve()).get({MODEL!r}, {version!r}).tags.get({OFFLINE_TAG!r}))"
    )
    done = subprocess.run([sys.executable, "-c", read], cwd=bay.root, env=bay.cli.environ(),
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    found = OfflineDifference.from_json(done.stdout.strip())
    assert found is not None, done.stdout + done.stderr
    return found


def _stop(bay: Bay) -> None:
    bay.cli.run("down", timeout=120)
    for owner in (f"{bay.home.resolve()}#{MODEL}", f"{bay.home.resolve()}#prometheus"):
        assert procs.sweep(owner) == [], f"`launchbay down` left processes of {owner} running"


def _shadow_checks(bay: Bay, release_id: int) -> dict[str, dict[str, object]]:
    """The last shadow analysis on record for a release, by check."""
    shadow = [
        e for e in bay.ledger.history(release_id=release_id)
        if e.action == "analysis" and e.phase_to == "shadow"
    ]  # fmt: skip
    assert shadow, "no shadow analysis on record"
    return {c["check"]: c for c in shadow[-1].evidence["checks"]}
