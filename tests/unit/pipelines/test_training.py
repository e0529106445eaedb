"""The training workflow: its shape, its Argo YAML (a golden file) and its validity for Argo."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from golden import assert_golden

from launchbay.config import load_config
from launchbay.pipelines.argo import to_yaml, validate
from launchbay.pipelines.executor import LocalExecutor
from launchbay.pipelines.training import STAGES, build_workflow

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "training-workflow.yaml"
REPO_CONFIG = Path(__file__).resolve().parents[3] / "examples" / "fraud-detector" / "launchbay.yaml"


def render() -> str:
    cfg = load_config(REPO_CONFIG)
    wf = build_workflow(cfg, config=cfg.argo.config_path, data=cfg.data.path, git_commit="")
    return to_yaml(wf.to_dict())


def test_rendered_workflow_matches_the_golden_file() -> None:
    assert_golden(render(), GOLDEN)


def test_rendered_workflow_is_valid_for_argo() -> None:
    manifest = yaml.safe_load(render())
    assert validate(manifest) == []
    images = {t["script"]["image"] for t in manifest["spec"]["templates"] if "script" in t}
    assert images == {"ghcr.io/launchbay/launchbay:0.1.0"}
    commands = [t["script"]["args"] for t in manifest["spec"]["templates"] if "script" in t]
    assert all(a[:3] == ["-m", "hera.workflows.runner", "-e"] for a in commands)


def test_schema_validation_catches_a_broken_manifest() -> None:
    manifest = yaml.safe_load(render())
    manifest["spec"]["templates"][0]["dag"]["tasks"][0]["arguments"] = "oops"
    problems = validate(manifest)
    assert problems and "arguments" in problems[0]


def test_the_dag_chains_the_stages(project: Callable[..., Path], tmp_path: Path) -> None:
    cfg = load_config(project(rows=200))
    tasks, _, _ = LocalExecutor(tmp_path).plan(build_workflow(cfg, config="c", data="d"))
    assert list(tasks) == list(STAGES)
    assert {n: set(t.deps) for n, t in tasks.items()} == {
        "validate-data": set(),
        "train": {"validate-data"},
        "evaluate": {"train"},
        "register": {"evaluate"},
        "sign": {"register"},
        "package": {"sign"},
    }


def test_image_comes_from_config_without_touching_other_workflows(project: Callable[..., Path]) -> None:
    path = project(rows=200, overrides={"argo.image": "registry.local/lb:9"})
    custom = build_workflow(load_config(path), config="c", data="d").to_dict()
    assert {t["script"]["image"] for t in custom["spec"]["templates"] if "script" in t} == {
        "registry.local/lb:9"
    }
    assert "ghcr.io/launchbay/launchbay:0.1.0" in render()  # the shared step templates are unchanged


@pytest.mark.parametrize("stage", STAGES)
def test_stage_names_are_the_task_names(stage: str) -> None:
    assert f"name: {stage}\n" in render()


def test_measuring_adds_a_step_after_packaging(project) -> None:  # type: ignore[no-untyped-def]
    from launchbay.config import load_config
    from launchbay.pipelines.training import STAGES, build_workflow, stages

    cfg = load_config(project(rows=200, overrides={"serving.measure": True}))
    assert stages(cfg) == (*STAGES, "measure")
    wf = build_workflow(cfg, config="launchbay.yaml", data="d.parquet").to_dict()
    assert validate(wf) == []
    tasks = {
        t["name"]: t
        for t in next(x for x in wf["spec"]["templates"] if x["name"] == "pipeline")["dag"]["tasks"]
    }
    assert tasks["measure"]["depends"] == "package"
