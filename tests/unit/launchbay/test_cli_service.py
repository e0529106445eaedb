"""`launchbay service install`: the controller started at boot, as systemd itself checks the unit."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from harness import Launchbay, assert_clean_error, lb


@pytest.mark.linux_only("systemd units")
def test_the_unit_runs_the_controller_as_a_standby_and_keeps_secrets_out_of_it(
    project: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hooks = [{"name": "team", "url_env": "TEAM_HOOK"}]
    config = project(rows=200, overrides={"notifications.webhooks": hooks})
    unit = tmp_path / "units" / "launchbay-controller.service"
    bay = Launchbay(config.parent, env={"TEAM_HOOK": "https://hooks.example/secret-token"})
    res = bay.run("service", "install", "--path", str(unit), "--json")
    assert res.returncode == 0, res.output
    doc = json.loads(res.stdout)
    text = unit.read_text()
    assert f'--config "{config.resolve()}" --standby' in text and "KillMode=process" in text
    assert "Restart=always" in text and "secret-token" not in text  # the unit may be world-readable
    env_file = Path(doc["env_file"])
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert 'TEAM_HOOK="https://hooks.example/secret-token"' in env_file.read_text()
    assert "LAUNCHBAY_HOME" in doc["variables"] and "TEAM_HOOK" in doc["variables"]
    assert doc["enable"].startswith("systemctl --user daemon-reload")
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, "setup.sh installs systemd: the unit is checked by systemd itself"
    assert doc["checked"] == "systemd-analyze verify: no problem"


@pytest.mark.linux_only("systemd units")
def test_a_project_whose_path_has_spaces_gets_a_unit_systemd_accepts(tmp_path: Path) -> None:
    from projects import write_project

    spaced = tmp_path / "my models" / "fraud detector"
    spaced.mkdir(parents=True)
    config = write_project(spaced, rows=200)
    unit = tmp_path / "u.service"
    installer = Launchbay(spaced, home=tmp_path / "state dir")
    res = installer.run("service", "install", "--path", str(unit), "--json")
    assert res.returncode == 0, res.output
    assert json.loads(res.stdout)["checked"] == "systemd-analyze verify: no problem"
    assert subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True).returncode == 0
    assert f'"{config.resolve()}"' in unit.read_text()


def test_a_cluster_project_has_no_local_controller_to_install(project: Callable[..., Path]) -> None:
    config = project(rows=200, overrides={"rollout.target": "kubernetes",
                                          "rollout.prometheus_url": "http://prometheus:9090",
                                          "rollout.shadow": None})  # fmt: skip
    assert_clean_error(lb("service", "install", cwd=config.parent), 2, "the controller runs in the cluster")
