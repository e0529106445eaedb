"""`launchbay run` end to end: real processes, real MLflow (SQLite), real Great Expectations.

Given/When/Then, as a data scientist experiences the pipeline.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import fraud_data as fraud
import pytest
from harness import Launchbay
from mlflow import MlflowClient


def _client(home: Path) -> MlflowClient:
    uri = f"sqlite:///{home / 'mlflow.db'}"
    return MlflowClient(uri, uri)


def _only_run(home: Path):  # type: ignore[no-untyped-def]
    """The single MLflow run a failed pipeline left behind."""
    client = _client(home)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    return run


@pytest.mark.slow
def test_first_good_model_becomes_champion_and_the_next_one_challenger(
    project: Callable[..., Path], lb_home: Path
) -> None:
    # Given the example project with good data and an empty registry
    config = project()
    # When the data scientist runs the pipeline
    first = Launchbay(config.parent).run("run", "--no-rollout")
    # Then every step passes and the first model is bootstrapped as champion
    assert first.returncode == 0, first.output
    assert "pipeline succeeded" in first.stdout
    assert "version 1 is now the champion (bootstrap)" in first.stdout
    # The run says what will be served: the ONNX variant, matched on the held-out rows
    assert "ONNX variant kept: largest score difference" in first.stdout, first.stdout[-2000:]
    state = Launchbay(config.parent).status()
    assert state["aliases"]["champion"]["version"] == 1
    assert state["aliases"]["champion"]["metrics"]["roc_auc"] > 0.85

    # And the MLflow run holds the parameters, the data digest and both gate reports
    client = _client(lb_home)
    run = client.get_run(state["aliases"]["champion"]["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["data.digest"].startswith("sha256:")
    assert run.data.tags["launchbay.gate.data"] == "PASS" and run.data.tags["launchbay.gate.model"] == "PASS"
    reports = {a.path for a in client.list_artifacts(run.info.run_id, "reports")}
    gates = ("data_gate", "model_gate", "onnx_variant")  # the variant's parity check is a report too
    assert reports == {f"reports/{g}.{ext}" for g in gates for ext in ("md", "json")}

    # And the state directory is its user's alone: the ledger, registry database, keys, reports
    shared = [
        f"{p.relative_to(lb_home)} {oct(p.stat().st_mode & 0o777)}"
        for p in [lb_home, *lb_home.rglob("*")]
        if not p.is_symlink() and p.stat().st_mode & 0o077
    ]
    assert shared == [], shared

    # When it runs again, the new model is compared with the champion and becomes challenger only
    second = Launchbay(config.parent).run("run", "--no-rollout")
    assert second.returncode == 0, second.output
    assert "champion-version=1" in second.stdout and "bootstrap" not in second.stdout
    state = Launchbay(config.parent).status()
    assert state["aliases"]["champion"]["version"] == 1
    assert state["aliases"]["challenger"]["version"] == 2
    # And status compares the two on the same held-out rows (the same data, the same split)
    assert state["comparison"]["same_rows"] is True
    assert state["comparison"]["champion"]["roc_auc"] == state["aliases"]["champion"]["metrics"]["roc_auc"]
    # And the run showed the model gate's comparison with the champion
    assert "ROC AUC vs champion v1" in second.stdout


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ("drifted", ["data gate FAIL", "amount: drift (PSI) vs reference", "median moved"]),
        ("broken", ["missing: device_age_days", "amount: type is float", "hour: no nulls"]),
    ],
)
def test_bad_data_stops_at_the_data_gate_with_a_readable_report(
    variant: str,
    expected: list[str],
    project: Callable[..., Path],
    lb_home: Path,
) -> None:
    # Given a project and a bad data file
    config = project(rows=3000)
    data = config.parent / "data" / f"{variant}.csv"
    if variant != "missing":
        fraud.write(fraud.generate(3000, variant, seed=2), data)  # type: ignore[arg-type]
    # When the pipeline runs on it
    res = Launchbay(config.parent).run("run", "--no-rollout", "--data", str(data))
    # Then it stops at validate-data, names each problem, and registers nothing
    assert res.returncode == 1, res.output
    assert "step validate-data failed" in res.stdout
    for text in expected:
        assert text in res.stdout, text
    assert "error: pipeline stopped at step validate-data" in res.stderr
    report = next((lb_home / "reports").glob("*/data_gate.md"))
    assert report.read_text().startswith("# data gate: FAIL")
    assert Launchbay(config.parent).status()["registered"] is False
    assert _only_run(lb_home).info.status == "FAILED"


def test_a_missing_data_file_or_a_wrong_train_function_is_named_before_any_step_runs(
    project: Callable[..., Path], lb_home: Path
) -> None:
    config = project(rows=500, overrides={"model.train": "fraud_model:trian"})
    res = Launchbay(config.parent).run("run", "--no-rollout", "--data", "data/nowhere.csv")
    assert res.returncode == 2, res.output
    assert "model.train: 'fraud_model' has no function 'trian' (functions: engineer, train)" in res.stderr
    assert "--data: " in res.stderr and "nowhere.csv does not exist" in res.stderr
    assert "validate-data" not in res.stdout and "Traceback" not in res.output
    assert not (lb_home / "mlflow.db").exists()  # nothing ran, nothing was created


USER_MODULES = {
    "raises": (
        "def train(features, target, params):\n    raise ValueError('learning rate must be positive')\n"
    ),
    "weak": (
        "from sklearn.linear_model import LogisticRegression\n"
        "def train(features, target, params):\n"
        "    from sklearn.compose import ColumnTransformer\n"
        "    from sklearn.pipeline import make_pipeline\n"
        "    prep = ColumnTransformer([('amount', 'passthrough', ['amount'])])\n"
        "    return make_pipeline(prep, LogisticRegression()).fit(features, target)\n"
    ),
}


def test_a_training_function_that_raises_fails_once_with_the_users_traceback(
    project: Callable[..., Path], lb_home: Path
) -> None:
    # Given the user's own training function, which raises
    config = project(rows=3000, overrides={"model.train": "user_model:train"})
    (config.parent / "user_model.py").write_text(USER_MODULES["raises"])
    # When the pipeline runs
    res = Launchbay(config.parent).run("run", "--no-rollout")
    # Then the train step fails once, showing the user's traceback, and the run is marked failed
    assert res.returncode == 1, res.output
    assert "step train failed" in res.stdout
    assert "ValueError: learning rate must be positive" in res.stdout
    assert 'user_model.py", line 2, in train' in res.stdout
    # The user's frames, not Hera's runner and pydantic's around them
    assert "hera/workflows" not in res.stdout and "frame(s) of launchbay and libraries left out" in res.stdout
    run = _only_run(lb_home)
    assert run.info.status == "FAILED"
    assert run.data.tags["launchbay.failed_step"] == "train"
    assert Launchbay(config.parent).status()["registered"] is False


@pytest.mark.slow
def test_a_model_worse_than_the_champion_is_stopped_by_the_model_gate(project: Callable[..., Path]) -> None:
    # Given a champion trained on the example model
    config = project(overrides={"gates.min_auc": 0.6, "gates.min_precision": 0.0, "gates.min_recall": 0.0})
    assert Launchbay(config.parent).run("run", "--no-rollout").returncode == 0
    # When a much weaker model (a single feature) is pushed
    (config.parent / "user_model.py").write_text(USER_MODULES["weak"])
    text = config.read_text().replace("fraud_model:train", "user_model:train")
    config.write_text(text)
    res = Launchbay(config.parent).run("run", "--no-rollout")
    # Then the model gate stops it on the comparison with the champion, and nothing moves
    assert res.returncode == 1, res.output
    assert "step evaluate failed" in res.stdout
    assert "FAIL ROC AUC vs champion v1" in res.stdout
    state = Launchbay(config.parent).status()
    assert state["versions"] == 1 and "challenger" in state["aliases"]  # v1 is both; no v2


def test_until_stops_after_the_named_step(project: Callable[..., Path]) -> None:
    config = project(rows=3000)
    res = Launchbay(config.parent).run("run", "--until", "validate-data")
    assert res.returncode == 0, res.output
    assert "not requested" in res.stdout and re.search(r"validate-data\s+│ passed", res.stdout)
    assert Launchbay(config.parent).status()["registered"] is False
