"""What a trained model must be for its task, and that each library's safe format loads back
answering exactly as the trained model does (what the gate scores is what the service serves)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from launchbay.config import load_config
from launchbay.errors import ConfigError
from launchbay.pipelines.model_log import classes_of, requirement
from launchbay.serving.artefact import load

BASE = {
    "model": {"name": "m", "train": "pkg:train", "code": []},
    "data": {"path": "d.csv", "target": "y", "features": {f"f{i}": {"type": "float"} for i in range(3)}},
}


def _cfg(tmp_path: Path, task: str) -> Any:
    path = tmp_path / "launchbay.yaml"
    path.write_text(yaml.safe_dump({**BASE, "model": {**BASE["model"], "task": task}}))
    return load_config(path)


def _data(classes: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(300, 3)), columns=["f0", "f1", "f2"])
    which = (x["f0"] > 0).astype(int) + (x["f1"] > 0.5).astype(int)
    y = np.asarray(["red", "green", "blue"])[which]
    return x, (y if classes == 3 else (x["f0"] > 0).astype(int).to_numpy())


def test_a_model_that_does_not_fit_its_task_is_named(tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from xgboost import XGBClassifier

    x, y3 = _data(3)
    three = LogisticRegression().fit(x, y3)
    with pytest.raises(ConfigError, match=r"knows 3 classes .*\(set model.task: multiclass\)"):
        classes_of(three, _cfg(tmp_path, "binary"))
    assert classes_of(three, _cfg(tmp_path, "multiclass")) == ["blue", "green", "red"]
    with pytest.raises(ConfigError, match=r"no predict_proba.*or set model.task: regression"):
        classes_of(LinearRegression().fit(x, x["f2"]), _cfg(tmp_path, "binary"))
    wrapped = make_pipeline(XGBClassifier(n_estimators=2)).fit(x, _data(2)[1])
    with pytest.raises(ConfigError, match="pipeline around XGBClassifier"):
        classes_of(wrapped, _cfg(tmp_path, "binary"))


def test_the_library_is_required_by_the_distribution_that_provides_it() -> None:
    assert requirement("xgboost").startswith("xgboost-cpu==")
    assert requirement("lightgbm").startswith("lightgbm==")


def _roundtrip(tmp_path: Path, flavor: str, model: Any, task: str, classes: Any) -> Any:
    import mlflow.lightgbm
    import mlflow.sklearn
    import mlflow.xgboost
    import skops.io

    meta = {"launchbay": {"task": task, "classes": classes}}
    path = tmp_path / flavor
    if flavor == "xgboost":
        mlflow.xgboost.save_model(model, str(path), model_format="ubj", metadata=meta)
    elif flavor == "lightgbm":
        mlflow.lightgbm.save_model(model.booster_, str(path), metadata=meta)
    else:
        trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
        mlflow.sklearn.save_model(
            model, str(path), serialization_format="skops", skops_trusted_types=trusted, metadata=meta
        )
    return load(path)


@pytest.mark.parametrize("flavor", ["sklearn", "xgboost", "lightgbm"])
def test_each_format_loads_back_answering_as_the_trained_model(tmp_path: Path, flavor: str) -> None:
    from lightgbm import LGBMClassifier
    from sklearn.ensemble import RandomForestClassifier
    from xgboost import XGBClassifier

    x, y = _data(3)
    if flavor == "xgboost":  # XGBoost wants its labels encoded 0..k-1
        y = pd.Series(y).map({"blue": 0, "green": 1, "red": 2}).to_numpy()
    make = {
        "sklearn": lambda: RandomForestClassifier(n_estimators=5, random_state=0),
        "xgboost": lambda: XGBClassifier(n_estimators=5),
        "lightgbm": lambda: LGBMClassifier(n_estimators=5, verbose=-1),
    }
    model = make[flavor]().fit(x, y)
    classes = np.asarray(model.classes_).tolist()
    loaded = _roundtrip(tmp_path, flavor, model, "multiclass", classes)
    assert loaded.classes == classes
    rows = x.head(20)
    assert np.allclose(loaded.output(rows), model.predict_proba(rows), atol=1e-6)
    files = {p.name for p in (tmp_path / flavor).iterdir()}
    assert not {f for f in files if f.endswith(".pkl")}, files  # nothing to unpickle


def test_a_pickled_scikit_learn_model_is_refused(tmp_path: Path) -> None:
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    x, y = _data(2)
    model = LogisticRegression().fit(x, y)
    mlflow.sklearn.save_model(model, str(tmp_path / "m"), serialization_format="pickle")
    with pytest.raises(ValueError, match="launchbay loads skops files only"):
        load(tmp_path / "m")
