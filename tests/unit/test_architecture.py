"""The floors hold: imports run only downward, no circle exists, and every part has its floor.

`lint-imports` (import-linter, configured in pyproject.toml) checks the contracts on the import
graph of the installed `launchbay` package, imports inside functions included. These tests run it
and check that the contracts name every part, so a new module cannot slip in without a floor.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]


def _contracts() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    contracts: list[dict[str, object]] = config["contracts"]
    return contracts


def test_every_import_runs_downward_and_no_circle_exists() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint is not None, "import-linter is a dev dependency (pip install -e '.[dev]')"
    res = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{len(_contracts())} kept, 0 broken" in res.stdout


def test_the_floors_name_every_part_of_launchbay() -> None:
    layers = next(c for c in _contracts() if c["type"] == "layers" and "containers" not in c)["layers"]
    assert isinstance(layers, list)
    named = {m.strip() for layer in layers for m in str(layer).split("|")}
    graph = grimp.build_graph("launchbay")
    parts = graph.find_children("launchbay") - {"launchbay.__main__"}
    assert parts == named, f"give these a floor in pyproject.toml: {sorted(parts - named)}"
    # The domain packages are the repository's top-level folders, linked into the one namespace.
    for part in ("checks", "serving", "rollout", "pipelines"):
        assert (ROOT / "launchbay" / part).resolve() == ROOT / part


def test_the_cli_app_module_registers_no_command_of_its_own() -> None:
    graph = grimp.build_graph("launchbay")
    imported = graph.find_modules_directly_imported_by("launchbay.cli.app")
    assert not {m for m in imported if m.startswith("launchbay.")}, imported


def test_rollouts_own_floors_name_every_module_of_rollout() -> None:
    contract = next(c for c in _contracts() if c.get("containers") == ["launchbay.rollout"])
    layers = contract["layers"]
    assert isinstance(layers, list)
    named = {f"launchbay.rollout.{m.strip()}" for layer in layers for m in str(layer).split("|")}
    parts = grimp.build_graph("launchbay").find_children("launchbay.rollout")
    assert parts == named, f"give these a floor inside rollout: {sorted(parts - named)}"


def test_on_calls_verbs_import_nothing_of_the_training_or_serving_stacks() -> None:
    # On-call's lean install (rollout/oncall-requirements.txt) has no numpy, pandas or scikit-learn:
    # a module on the rollback path that imports one at its top breaks `launchbay rollback` there.
    # (The end-to-end test installs it for real; this finds the culprit in a second.)
    probe = (
        "import sys\n"
        "import launchbay.cli.app, launchbay.rollout.engine.controller, launchbay.rollout.engine.decisions\n"
        "import launchbay.rollout.engine.operations, launchbay.rollout.status, launchbay.rollout.factory\n"
        "heavy = ('numpy', 'pandas', 'sklearn', 'bentoml', 'great_expectations', 'onnxruntime', 'hera')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]", res.stdout
