"""A user's own business metric decides a rollout: a candidate that passes every offline gate and
every SLO, but answers "positive" three times as often as stable, is rolled back in canary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from harness import Launchbay
from projects import FAST_ROLLOUT

pytestmark = pytest.mark.slow

POSITIVE_SHARE = (
    'sum(increase(launchbay_predictions_total{version="{version}",predicted_class="1"}[{window}]))'
    ' / sum(increase(launchbay_predictions_total{version="{version}"}[{window}]))'
)


def test_a_candidate_flagging_three_times_as_many_positives_is_rolled_back_by_the_users_metric(
    tmp_path: Path,
) -> None:
    from sklearn.datasets import make_classification

    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    x, y = make_classification(
        n_samples=1500, n_features=5, n_informative=4, n_redundant=0, weights=[0.8], class_sep=1.5,
        random_state=0,
    )
    frame = pd.DataFrame(np.round(x, 4), columns=[f"f{i}" for i in range(1, 6)])
    frame["label"] = y
    frame.to_parquet(repo / "data" / "train.parquet", index=False)
    bay = Launchbay(repo, home=repo / ".launchbay")
    made = bay.run("init", "--data", "data/train.parquet", "--target", "label", "--name", "fraud-flags")
    assert made.returncode == 0, made.output
    config = repo / "launchbay.yaml"
    doc = yaml.safe_load(config.read_text())
    doc["rollout"].update({**FAST_ROLLOUT, "shadow": None})
    doc["rollout"]["metrics"] = {
        "positive_share": {"query": POSITIVE_SHARE, "compare": "relative", "max": 1.5}
    }
    doc["data"]["min_rows"] = 100
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    try:
        assert bay.run("keys", "init").returncode == 0
        first = bay.run("run", timeout=600)
        assert first.returncode == 0, first.output
        # The same model, signed with a decision threshold that flags far more rows as positive:
        # every offline gate passes (AUC is unchanged), every SLO too.
        doc["gates"]["decision_threshold"] = 0.03
        config.write_text(yaml.safe_dump(doc, sort_keys=False))
        second = bay.run("run", "--traffic", "40", timeout=600)
        assert second.returncode == 1, second.output
        assert "fraud-flags@v2#2: rolled-back" in second.stdout, second.stdout[-3000:]
        status = bay.status()
        shown = next(r for r in status["releases"] if r["id"] == 2)
        failed = {c["check"]: c for c in shown["analysis"]["checks"] if c["verdict"] == "FAIL"}
        assert set(failed) == {"metric positive_share vs stable"}, shown["analysis"]
        assert failed["metric positive_share vs stable"]["observed"] > 1.5
        assert status["aliases"]["champion"]["version"] == 1
    finally:
        bay.run("down", timeout=120)
