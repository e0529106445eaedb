"""`launchbay init` and `launchbay schema`: what a new model repository starts from."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pandas as pd
import pytest
import yaml
from harness import assert_clean_error, lb

from launchbay.config import load_config
from launchbay.pipelines import scaffold

EXAMPLE_CONFIG = Path(__file__).resolve().parents[3] / "examples" / "fraud-detector" / "launchbay.yaml"


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "amount": [12.5, 870.0, 3.2, 40.0],
            "visits": [1, 5, 0, 23],
            "member": [True, False, True, True],
            "plan": ["basic", "pro", "basic", None],
            "customer_id": ["c1", "c2", "c3", "c4"],
            "churned": [0, 1, 0, 1],
            "spend": [10.5, 99.0, 1.25, 7.0],
            "tier": ["a", "b", "c", "a"],
        }
    )


def test_features_are_inferred_with_bounds_around_the_observed_range_and_ids_left_out() -> None:
    inferred = scaffold.infer(_frame().drop(columns=["spend", "tier"]), "churned")
    assert inferred.task == "binary"
    assert inferred.features == {
        "amount": {"type": "float", "min": 0.0, "max": 3000.0},  # 3.2-870, a heavy tail: room
        "visits": {"type": "int", "min": 0, "max": 65},
        "member": {"type": "bool"},
        "plan": {"type": "category", "values": ["basic", "pro"], "nullable": True},
    }
    assert "customer_id" in inferred.left_out  # every value distinct: an id, not a feature
    assert inferred.id_column == "customer_id"


def test_a_numeric_id_is_no_feature_and_becomes_the_id_column() -> None:
    frame = _frame().assign(patient_id=[101, 102, 103, 104], customer_id=["a", "a", "b", "c"])
    inferred = scaffold.infer(frame, "churned")
    assert "patient_id" not in inferred.features and inferred.id_column == "patient_id"


def test_bounds_fit_next_weeks_data_and_not_a_unit_error() -> None:
    # Breast cancer, 60% of the rows -> all of them: a light tail and a heavy one.
    assert scaffold.with_margin(6.98, 27.22, 13.4) == (0.0, 55.0)  # mean radius (28.11 in all): not 100
    low, high = scaffold.with_margin(7.228, 233.0, 24.0)  # area error: 542 in all the rows
    assert low == 0 and 542 < high < 2330  # it fits; the same column x10 does not
    assert scaffold.with_margin(-3.5, 2.0) == (-10.0, 10.0)
    assert scaffold.with_margin(5.0, 5.0) == (2.5, 7.5)  # a constant column still gets room
    low, high = scaffold.with_margin(1200.0, 1900.0)
    assert low <= 850 and 2250 <= high < 19000  # x10 is out


@pytest.mark.parametrize(
    ("target", "task"), [("churned", "binary"), ("spend", "regression"), ("tier", "multiclass")]
)
def test_the_task_is_inferred_from_the_target(target: str, task: str) -> None:
    assert scaffold.infer(_frame(), target).task == task


def test_outward_bounds() -> None:
    assert [scaffold.outward(v) for v in (3.87, 870, 0.05, -3.2, 0)] == [10, 1000, 0.1, 0, 0]
    assert [scaffold.outward(v, low=True) for v in (3.87, -3.2, -870)] == [0, -10, -1000]


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_init_writes_a_config_that_loads_validates_against_its_schema_and_imports(
    tmp_path: Path, task: str
) -> None:
    _frame().to_csv(tmp_path / "sample.csv", index=False)
    res = lb("init", str(tmp_path / "repo"), "--data", str(tmp_path / "sample.csv"), "--target", "churned",
             "--task", task, "--json", cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.output
    doc = json.loads(res.stdout)
    repo = tmp_path / "repo"
    config = repo / "launchbay.yaml"
    assert config.read_text().startswith("# yaml-language-server: $schema=launchbay.schema.json\n")
    cfg = load_config(config)
    assert (cfg.model.name, cfg.model.task, doc["model"]) == ("repo", task, "repo")
    schema = json.loads((repo / "launchbay.schema.json").read_text())
    jsonschema.validate(yaml.safe_load(config.read_text()), schema)  # "30s", null gates, ...
    assert ".launchbay/" in (repo / ".gitignore").read_text()
    assert "predict_proba()" in (repo / "model.py").read_text()  # the contract, in the docstring
    checked = lb("check", "--json", cwd=repo)  # model.train imports and takes the three arguments
    assert checked.returncode == 0 and json.loads(checked.stdout)["ok"] is True, checked.output
    # Drift on from the start: a sample of the data as it is today is its reference.
    assert cfg.data.reference == "data/reference.csv" and doc["reference"] == "data/reference.csv"
    assert len(pd.read_csv(repo / "data" / "reference.csv")) == len(_frame())
    assert cfg.data.id_column == "customer_id"
    # Files to commit and share, not private ones (the CLI's umask is for launchbay's own state).
    shared = ("launchbay.yaml", "model.py", "data/reference.csv", ".github/workflows/launchbay-pipeline.yml")
    for rel in shared:
        assert (repo / rel).stat().st_mode & 0o777 == 0o644, rel
    assert (repo / ".github").stat().st_mode & 0o777 == 0o755


def test_the_schema_accepts_the_example_and_names_a_typo(tmp_path: Path) -> None:
    res = lb("schema", cwd=tmp_path)
    assert res.returncode == 0
    schema = json.loads(res.stdout)
    example = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    jsonschema.validate(example, schema)
    example["gates"]["min_acu"] = 0.9
    with pytest.raises(jsonschema.ValidationError, match="min_acu"):
        jsonschema.validate(example, schema)


def test_init_never_overwrites_without_force(tmp_path: Path) -> None:
    (tmp_path / "launchbay.yaml").write_text("mine\n")
    assert_clean_error(lb("init", cwd=tmp_path), 2, "would overwrite launchbay.yaml")
    assert (tmp_path / "launchbay.yaml").read_text() == "mine\n"
    assert_clean_error(lb("init", "--data", "nope.csv", cwd=tmp_path), 2, "--data nope.csv: no such file")


def test_the_generated_workflows_are_actionlint_clean_and_call_the_installed_launchbay(
    tmp_path: Path,
) -> None:
    written = scaffold.files(
        tmp_path, name="m", task="binary", data="d.csv", target="y", inferred=None, approvers=["alice"],
        package="launchbay==0.1.0",
    )  # fmt: skip
    workflows = []
    for rel, text in written.items():
        if rel.parts[0] == ".github":
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_text(text)
            workflows.append(tmp_path / rel)
            assert "make " not in text and ".venv/bin" not in text
            lean = rel.name == "launchbay-rollback.yml"  # on-call installs only what a rollback needs
            install = '-q --no-deps "$LAUNCHBAY_PACKAGE"' if lean else '"$LAUNCHBAY_PACKAGE"'
            assert f"pip install {install}" in text
            assert "@@" not in text and ('MODEL: "m"' in text) == (rel.name == "launchbay-pipeline.yml")
            assert 'LAUNCHBAY_PACKAGE: "launchbay==0.1.0"' in text
    assert len(workflows) == 3
    binary = shutil.which("actionlint") or str(Path(sys.executable).parent / "actionlint")
    res = subprocess.run(
        [binary, *map(str, workflows)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("rps", [0.2, 1, 3, 5, 12, 30, 50, 400])
def test_every_analysis_init_writes_can_decide_at_the_rate_it_was_given(rps: float) -> None:
    from launchbay.config.rollout import RolloutSection

    sized = scaffold.sizing(rps)
    rollout = RolloutSection.model_validate({
        "expected_rps": rps, "steps": [int(s) for s in sized["STEPS"].split(", ")],
        "analysis_window": sized["WINDOW"], "min_samples": int(sized["MIN_SAMPLES"]),
        "shadow": {"duration": sized["SHADOW_DURATION"]}, "interval": sized["INTERVAL"],
    })  # fmt: skip
    assert rollout.unreachable() == []
    # ...while the defaults of a larger rate cannot decide at a tenth of it, and check says so.
    rollout = rollout.model_copy(update={"expected_rps": rps / 10})
    assert any("it would wait forever" in w for w in rollout.unreachable())


def test_check_warns_when_a_step_cannot_reach_min_samples_at_the_expected_rate(tmp_path: Path) -> None:
    _frame().to_csv(tmp_path / "sample.csv", index=False)
    assert lb("init", str(tmp_path / "repo"), "--data", str(tmp_path / "sample.csv"), "--target", "churned",
              "--rps", "30", cwd=tmp_path).returncode == 0  # fmt: skip
    config = tmp_path / "repo" / "launchbay.yaml"
    assert "expected_rps: 30" in config.read_text() and "steps: [10, 25, 50]" in config.read_text()
    assert json.loads(lb("check", "--json", cwd=config.parent).stdout)["warnings"] == []
    config.write_text(config.read_text().replace("expected_rps: 30", "expected_rps: 2"))
    checked = lb("check", cwd=config.parent)
    assert checked.returncode == 0, checked.output  # a warning, not an error
    said = " ".join(checked.stdout.split())
    assert "warning: rollout at expected_rps 2: canary 10%: at 0.2 requests/s a 25s window holds ~5" in said
