"""The ONNX variant: kept only when it answers like the native model, and the report says why not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from model_dirs import FEATURES, example_frame, feature_specs, request_rows, saved
from model_kinds import KINDS

from launchbay.checks.verdict import Verdict
from launchbay.serving.artefact import load
from launchbay.serving.inputs import model_input
from launchbay.serving.lean_model import has_variant, load_variant, read_variant
from launchbay.serving.onnx_variant import make_variant


def scaffolded(estimator: Any, features: pd.DataFrame) -> Any:
    """The pipeline `launchbay init` writes into a user's model.py (imputation, scaling, one-hot)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    text = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    numbers = [c for c in features.columns if c not in text]
    fill = SimpleImputer(strategy="median")
    numeric = Pipeline([("fill", fill), ("scale", StandardScaler())])
    most = SimpleImputer(strategy="most_frequent")
    categorical = Pipeline([("fill", most), ("encode", OneHotEncoder(handle_unknown="ignore"))])
    prepare = ColumnTransformer([("numbers", numeric, numbers), ("categories", categorical, text)])
    return Pipeline([("prepare", prepare), ("model", estimator)])


def _agrees(directory: Path, rows: list[list[Any]]) -> float:
    """Largest difference between the kept variant and the native model on `rows`."""
    spec = json.loads((directory / "serving.json").read_text())
    native = load(directory)
    expected = native.output(model_input(native.model, rows, list(spec["features"])))
    return float(np.abs(load_variant(directory)(rows) - expected).max())


def test_the_example_keeps_its_own_feature_function_and_converts_the_rest(tmp_path: Path) -> None:
    import fraud_model

    frame = example_frame()
    x = frame[list(FEATURES)]
    model = fraud_model.train(x, frame["is_fraud"], {"C": 0.5, "max_iter": 2000})
    d = saved(model, tmp_path / "m", "binary", FEATURES, threshold=0.3)
    report = make_variant(d, request_rows(x))
    assert report.verdict is Verdict.PASS, report.to_dict()
    assert report.summary["served"] == "onnx"
    doc = read_variant(d)
    assert doc["prefix"] == [{"function": "fraud_model:engineer", "kw_args": {}}]
    assert doc["inputs"]["kind"] == "matrix" and doc["parity"]["differing_classes"] == 0
    # Rows it was not gated on agree too.
    assert _agrees(d, request_rows(example_frame(500, seed=9)[list(FEATURES)])) <= 1e-5


def test_a_dataframe_pipeline_with_categories_and_missing_values_becomes_one_input_per_column(
    tmp_path: Path,
) -> None:
    from sklearn.linear_model import LogisticRegression

    frame = example_frame()
    x = frame[list(FEATURES)].copy()
    x.loc[x.index[::7], "merchant_category"] = None  # a nullable category, imputed by the pipeline
    x.loc[x.index[::11], "distance_from_home_km"] = np.nan
    model = scaffolded(LogisticRegression(max_iter=1000), x).fit(x, frame["is_fraud"])
    d = saved(model, tmp_path / "m", "binary", feature_specs(x))
    report = make_variant(d, request_rows(x))
    assert report.verdict is Verdict.PASS, report.to_dict()
    columns = {c["name"]: c["dtype"] for c in read_variant(d)["inputs"]["columns"]}
    assert columns["merchant_category"] == "string" and columns["amount"] == "float32"
    rows = request_rows(x.iloc[::7])  # every one has a missing category
    assert any(r[2] is None for r in rows) and _agrees(d, rows) <= 1e-5


@pytest.mark.parametrize("kind", ["multiclass", "regression", "xgboost", "lightgbm"])
def test_each_kind_of_model_launchbay_trains_converts(tmp_path: Path, kind: str) -> None:
    from sklearn.linear_model import LogisticRegression, Ridge

    k = KINDS[kind]
    frame = k.frame()
    x, y = frame.drop(columns=["label"]), frame["label"]
    if kind == "multiclass":
        model = scaffolded(LogisticRegression(max_iter=1000), x)
    elif kind == "regression":
        model = scaffolded(Ridge(), x)
    elif kind == "xgboost":
        from xgboost import XGBClassifier

        model = XGBClassifier(n_estimators=40, max_depth=3, learning_rate=0.2, random_state=0)
    else:
        from lightgbm import LGBMClassifier

        model = LGBMClassifier(n_estimators=40, num_leaves=15, random_state=0, verbose=-1)
    d = saved(model.fit(x, y), tmp_path / "m", k.task, feature_specs(x))
    report = make_variant(d, request_rows(x))
    assert report.verdict is Verdict.PASS, report.to_dict()
    assert has_variant(d)


def test_a_variant_that_disagrees_is_not_kept_and_the_numbers_say_why(tmp_path: Path) -> None:
    from sklearn.ensemble import RandomForestClassifier

    frame = example_frame()
    x = frame[list(FEATURES)]
    model = scaffolded(RandomForestClassifier(n_estimators=30, random_state=0), x).fit(x, frame["is_fraud"])
    d = saved(model, tmp_path / "m", "binary", FEATURES)
    report = make_variant(d, request_rows(x))
    assert report.verdict is Verdict.FAIL and report.summary["served"] == "natively"
    (diff,) = [c for c in report.checks if c.name.startswith("largest score difference")]
    # float32 split thresholds move a forest's scores by far more than the tolerance
    assert diff.verdict is Verdict.FAIL and diff.observed > 1e-3 and diff.expected == "<= 1e-05"
    assert not has_variant(d)


def test_a_native_answer_does_not_depend_on_the_rows_batched_with_it(tmp_path: Path) -> None:
    """A missing category in a batch where every category is missing is still imputed (it was
    not, before: pandas kept None, which the pipeline's imputer does not count as missing)."""
    from sklearn.linear_model import LogisticRegression

    frame = example_frame(1500)
    x = frame[list(FEATURES)].copy()
    x.loc[x.index[::3], "merchant_category"] = None
    model = scaffolded(LogisticRegression(max_iter=1000), x).fit(x, frame["is_fraud"])
    d = saved(model, tmp_path / "m", "binary", feature_specs(x))
    native = load(d)
    lonely = request_rows(x.iloc[[0]])  # a missing category, alone in its batch
    mixed = [*lonely, *request_rows(x.iloc[[1, 2]])]
    assert lonely[0][2] is None and mixed[1][2] is not None
    alone = native.output(model_input(native.model, lonely, list(FEATURES)))[0]
    together = native.output(model_input(native.model, mixed, list(FEATURES)))[0]
    assert np.allclose(alone, together, atol=1e-12)


def test_a_tolerance_the_variant_cannot_meet_keeps_the_native_model(tmp_path: Path) -> None:
    from sklearn.linear_model import Ridge

    k = KINDS["regression"]
    frame = k.frame()
    x, y = frame.drop(columns=["label"]), frame["label"]
    d = saved(scaffolded(Ridge(), x).fit(x, y), tmp_path / "m", "regression", feature_specs(x))
    report = make_variant(d, request_rows(x), tolerance=1e-12)
    assert report.verdict is Verdict.FAIL and not has_variant(d)
    (diff,) = [c for c in report.checks if c.name.startswith("largest score difference")]
    assert "relative to max(1, |value|)" in diff.name
    assert "float32" in diff.detail and "float64" in diff.detail  # double precision was tried too


def test_column_names_onnx_would_rewrite_get_recorded_input_names(tmp_path: Path) -> None:
    # scikit-learn's wine data has "od280/od315_of_diluted_wines"; users name columns anything.
    from sklearn.linear_model import LogisticRegression

    frame = example_frame()
    x = frame[list(FEATURES)].copy()
    renamed = {c: n for c, n in zip(x.columns, ["amount/usd", "hour of day", "x.y", "ünïcode", "a-b"],
                                    strict=False)}  # fmt: skip
    x = x.rename(columns=renamed)
    model = scaffolded(LogisticRegression(max_iter=1000), x).fit(x, frame["is_fraud"])
    d = saved(model, tmp_path / "m", "binary", feature_specs(x))
    report = make_variant(d, request_rows(x))
    assert report.verdict is Verdict.PASS, report.to_dict()
    columns = read_variant(d)["inputs"]["columns"]
    assert {c["name"] for c in columns} >= set(renamed.values())
    inputs = {c["name"]: c["input"] for c in columns}
    assert inputs["amount/usd"] != "amount/usd"  # the graph's own name, recorded beside the column's
    assert _agrees(d, request_rows(x.iloc[:50])) <= 1e-5


def test_a_variant_that_cannot_be_made_says_why_whole() -> None:
    from launchbay.serving.onnx_variant import _whole

    long = "Required inputs (['" + "x" * 400 + "']) are missing from input feed (['a', 'b'])."
    assert _whole(long) == long  # not cut at 300 characters
    dump = "graph " + "node " * 1000
    assert _whole(dump).endswith("more characters)") and len(_whole(dump)) < 2100


@pytest.mark.parametrize(
    ("library", "labels"),
    [("xgboost", [0, 1, 2]), ("lightgbm", [3, 5, 7]), ("lightgbm", ["low", "mid", "high"])],
)
def test_boosted_multiclass_models_with_integer_labels_are_gated_served_and_scored(
    tmp_path: Path, library: str, labels: list[Any]
) -> None:
    # load_wine's labels are 0, 1, 2: XGBoost wants exactly those, LightGBM takes any.
    from sklearn.datasets import make_classification

    from launchbay.checks.model_gate import score

    x, y = make_classification(n_samples=600, n_features=5, n_informative=4, n_redundant=0, n_classes=3,
                               class_sep=1.5, random_state=0)  # fmt: skip
    frame = pd.DataFrame(np.round(x, 4), columns=[f"f{i}" for i in range(1, 6)])
    target = np.asarray(labels, dtype=object if isinstance(labels[0], str) else np.int64)[y]
    if library == "xgboost":
        from xgboost import XGBClassifier

        model = XGBClassifier(n_estimators=30, max_depth=3, random_state=0)
    else:
        from lightgbm import LGBMClassifier

        model = LGBMClassifier(n_estimators=30, num_leaves=15, random_state=0, verbose=-1)
    d = saved(model.fit(frame, target), tmp_path / "m", "multiclass", feature_specs(frame))
    report = make_variant(d, request_rows(frame))
    assert report.verdict is Verdict.PASS, report.to_dict()
    native = load(d)
    output = native.output(model_input(native.model, request_rows(frame), list(frame.columns)))
    scores = score(output, target[:400], task="multiclass", classes=native.classes)
    assert (scores.get("accuracy") or 0) > 0.8 and set(scores.class_counts) == {str(v) for v in labels}
    assert _agrees(d, request_rows(frame.iloc[:100])) <= 1e-5
