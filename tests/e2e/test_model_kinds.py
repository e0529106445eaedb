"""Each kind of model through the same commands: a multiclass classifier and a regressor
(scikit-learn), trained, gated, signed, packaged, served and rolled out from a repository made by
`launchbay init`. The boosted libraries have their own file (test_boosted_models.py), so that
xdist runs the two halves side by side."""

from __future__ import annotations

from pathlib import Path

import pytest
from model_kinds import KINDS, ask, rolled_out, shadow_checks

pytestmark = pytest.mark.slow


def test_a_multiclass_classifier_answers_with_a_class_and_every_class_score(tmp_path: Path) -> None:
    kind = KINDS["multiclass"]
    with rolled_out(tmp_path, kind) as (bay, state):
        metrics = state["aliases"]["champion"]["metrics"]
        assert metrics["roc_auc"] > 0.8 and "accuracy" in metrics  # macro AUC and accuracy gated
        rows = kind.frame().head(5).drop(columns="label").to_dict("records")
        answer = ask(state["gateway"]["url"], rows)
        assert answer["version"] == "2"
        for p in answer["predictions"]:
            assert p["prediction"] in {"red", "green", "blue"}
            assert set(p["scores"]) == {"red", "green", "blue"}
            assert abs(sum(p["scores"].values()) - 1) < 1e-6 and p["score"] == max(p["scores"].values())
        assert {"prediction disagreement with stable", "mean score shift vs stable"} <= shadow_checks(
            bay, "multiclass-model"
        )


def test_a_regressor_answers_with_a_value_and_is_compared_by_relative_difference(tmp_path: Path) -> None:
    kind = KINDS["regression"]
    with rolled_out(tmp_path, kind) as (bay, state):
        metrics = state["aliases"]["champion"]["metrics"]
        assert set(metrics) >= {"rmse", "mae", "r2"} and metrics["r2"] > 0.9
        frame = kind.frame().head(5)
        answer = ask(state["gateway"]["url"], frame.drop(columns="label").to_dict("records"))
        values = [p["prediction"] for p in answer["predictions"]]
        assert all(isinstance(v, float) for v in values) and set(answer["predictions"][0]) == {"prediction"}
        assert max(abs(v - y) for v, y in zip(values, frame["label"], strict=True)) < 50
        checks = shadow_checks(bay, "regression-model")
        assert "mean relative difference vs stable" in checks
        assert "prediction disagreement with stable" not in checks
