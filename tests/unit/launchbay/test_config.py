"""Config loading: every mistake names the file, the key path and what was expected."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from launchbay.config import load_config
from launchbay.errors import ConfigError


def test_example_config_loads_and_resolves_paths_next_to_the_file(project: Callable[..., Path]) -> None:
    path = project(rows=200)
    cfg = load_config(path)
    assert cfg.model.name == "fraud-detector"
    assert cfg.resolve_path(cfg.data.path) == str(path.parent / "data" / "transactions.parquet")
    assert cfg.resolve_path("s3://bucket/x.parquet") == "s3://bucket/x.parquet"
    assert cfg.experiment_name == "fraud-detector"


def _error(tmp_path: Path, content: object) -> str:
    path = tmp_path / "launchbay.yaml"
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.exit_code == 2
    assert str(path) in err.value.message
    return err.value.message


BASE = {
    "model": {"name": "m", "train": "pkg.mod:fn"},
    "data": {"path": "d.csv", "features": {"x": {"type": "float"}}},
}


def test_wrong_value_names_key_path_expected_and_got(tmp_path: Path) -> None:
    msg = _error(tmp_path, {**BASE, "gates": {"min_auc": 1.7}})
    assert "gates.min_auc" in msg and "less than or equal to 1" in msg and "1.7" in msg


def test_unknown_key_is_an_error_not_ignored(tmp_path: Path) -> None:
    msg = _error(tmp_path, {**BASE, "gates": {"min_acu": 0.9}})
    assert "gates.min_acu: unknown key (expected one of: " in msg and "min_auc" in msg


def test_missing_required_key(tmp_path: Path) -> None:
    msg = _error(tmp_path, {"model": BASE["model"]})
    assert "data: required key is missing" in msg


def test_bad_entrypoint_and_category_without_values(tmp_path: Path) -> None:
    msg = _error(
        tmp_path,
        {
            "model": {"name": "m", "train": "not an entrypoint"},
            "data": {"path": "d.csv", "features": {"c": {"type": "category"}}},
        },
    )
    assert "model.train: expected 'package.module:function'" in msg
    assert "data.features.c" in msg and "needs `values`" in msg


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    msg = _error(tmp_path, "model:\n  name: [unclosed\n")
    assert "not valid YAML at line" in msg


def test_empty_file_and_missing_file(tmp_path: Path) -> None:
    assert "expected a mapping" in _error(tmp_path, "")
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_a_gate_the_task_has_no_metric_for_is_an_error_not_ignored(tmp_path: Path) -> None:
    regression = {**BASE, "model": {**BASE["model"], "task": "regression"}}
    msg = _error(tmp_path, {**regression, "gates": {"min_auc": 0.9}})
    assert "gates.min_auc does not apply to a regression model" in msg and "rmse, mae, r2" in msg
    msg = _error(tmp_path, {**BASE, "gates": {"max_rmse": 3}})
    assert "gates.max_rmse does not apply to a binary model" in msg
    msg = _error(tmp_path, {**regression, "gates": {"vs_champion": ["roc_auc"]}})
    assert "gates.vs_champion: roc_auc is not a metric of a regression model" in msg


def test_task_decides_what_is_compared_with_the_champion(tmp_path: Path) -> None:
    path = tmp_path / "launchbay.yaml"
    path.write_text(yaml.safe_dump({**BASE, "model": {**BASE["model"], "task": "regression"}}))
    assert load_config(path).champion_metrics == ("rmse",)
    path.write_text(yaml.safe_dump({**BASE, "gates": {"vs_champion": ["roc_auc", "f1"]}}))
    assert load_config(path).champion_metrics == ("roc_auc", "f1")


def test_the_code_shipped_with_the_model_defaults_to_the_module_of_train(tmp_path: Path) -> None:
    path = tmp_path / "launchbay.yaml"
    (tmp_path / "pkg").mkdir()
    path.write_text(yaml.safe_dump(BASE))
    assert load_config(path).code_paths() == [tmp_path / "pkg"]
    path.write_text(yaml.safe_dump({**BASE, "model": {**BASE["model"], "code": ["a.py", "lib"]}}))
    assert load_config(path).code_paths() == [tmp_path / "a.py", tmp_path / "lib"]


def test_a_users_metric_needs_its_condition_and_its_version(tmp_path: Path) -> None:
    def rollout(metric: dict[str, object], name: str = "positive_share") -> dict[str, object]:
        return {**BASE, "rollout": {"metrics": {name: metric}}}

    q = 'sum(rate(x{version="{version}"}[{window}]))'
    assert "needs its success condition" in _error(tmp_path, rollout({"query": q}))
    assert "select the version it measures with {version}" in _error(
        tmp_path, rollout({"query": "up", "max": 1})
    )
    assert "metric name 'Share!'" in _error(tmp_path, rollout({"query": q, "max": 1}, name="Share!"))
    assert "rollout.metrics.positive_share.compare" in _error(
        tmp_path, rollout({"query": q, "max": 1, "compare": "ratio"})
    )


def test_explicit_steps_say_which_key_is_wrong(tmp_path: Path) -> None:
    def steps(*items: object, **approval: object) -> dict[str, object]:
        return {**BASE, "rollout": {"steps": list(items), **approval}}

    assert "exactly one of set_weight, pause, analysis, approval" in _error(
        tmp_path, steps({"set_weight": 10, "pause": "5s"})
    )
    assert "canary weights that increase" in _error(tmp_path, steps({"set_weight": 50}, {"set_weight": 10}))
    assert "an `approval` step needs approval.approvers" in _error(tmp_path, steps({"approval": True}))
    assert "rollout.steps" in _error(tmp_path, steps({"analysis": {"duration": "5s", "failure_limit": -1}}))
    unknown = steps({"set_weight": 10}, {"analysis": {"duration": "5s", "metrics": ["latency_p99"]}})
    assert "steps[1].analysis.metrics names latency_p99: expected names under rollout.metrics" in _error(
        tmp_path, unknown
    )
