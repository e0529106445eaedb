"""XGBoost and LightGBM models through the same commands as scikit-learn's, each saved in its
library's own safe format (UBJSON; the booster's text model), never pickled."""

from __future__ import annotations

from pathlib import Path

import pytest
from model_kinds import KINDS, ask, rolled_out

pytestmark = pytest.mark.slow


def _served_model_files(home: Path, model: str) -> set[str]:
    stored = home / "bentoml" / "models" / model / "v2" / "signed"
    return {p.name for p in stored.iterdir()}


def test_an_xgboost_classifier_is_saved_as_ubjson_and_rolled_out(tmp_path: Path) -> None:
    kind = KINDS["xgboost"]
    with rolled_out(tmp_path, kind) as (bay, state):
        assert state["aliases"]["champion"]["metrics"]["roc_auc"] > 0.8
        files = _served_model_files(bay.home, "xgboost-model")  # type: ignore[arg-type]
        assert "model.ubj" in files and not {f for f in files if f.endswith((".pkl", ".skops"))}
        rows = kind.frame().head(4).drop(columns="label").to_dict("records")
        for p in ask(state["gateway"]["url"], rows)["predictions"]:
            assert p["prediction"] in {0, 1} and 0 <= p["score"] <= 1
        bento = bay.home / "bentoml" / "bentos" / "xgboost-model" / "v2"  # type: ignore[operator]
        packages = (bento / "env" / "python" / "requirements.txt").read_text().split()
        assert any(p.startswith("xgboost-cpu==") for p in packages), packages
        assert (bento / "src" / "boosted.py").is_file()  # the user's code travels with the model


def test_a_lightgbm_classifier_is_saved_as_its_booster_and_keeps_its_labels(tmp_path: Path) -> None:
    kind = KINDS["lightgbm"]
    with rolled_out(tmp_path, kind) as (bay, state):
        assert state["aliases"]["champion"]["metrics"]["accuracy"] > 0.7
        files = _served_model_files(bay.home, "lightgbm-model")  # type: ignore[arg-type]
        assert "model.lgb" in files and not {f for f in files if f.endswith((".pkl", ".skops"))}
        frame = kind.frame().tail(40)
        answer = ask(state["gateway"]["url"], frame.drop(columns="label").to_dict("records")[:40])
        predicted = [p["prediction"] for p in answer["predictions"]]
        assert set(predicted) <= {"red", "green", "blue"}
        right = sum(p == y for p, y in zip(predicted, frame["label"], strict=True))
        assert right / len(predicted) > 0.6  # the labels map back to the right classes
