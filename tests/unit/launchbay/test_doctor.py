"""`launchbay doctor` names every problem of the environment at once, each with its fix."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from pathlib import Path

import pytest
from harness import Launchbay
from projects import write_project

from launchbay.checks.ec import generate


def _path_without(binary: str) -> str:
    """$PATH without the directories holding `binary` (this venv's bin kept first)."""
    keep = [str(Path(sys.executable).parent)]
    for d in os.environ.get("PATH", "").split(os.pathsep):
        if d and not (Path(d) / binary).exists() and d not in keep:
            keep.append(d)
    return os.pathsep.join(keep)


def test_no_prometheus_a_busy_port_and_a_readable_key_are_all_named_with_their_fix(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        write_project(tmp_path, rows=200, overrides={"rollout.gateway_port": port})
        home = tmp_path / ".launchbay"
        key = home / "keys" / "signing-key.pem"
        key.parent.mkdir(parents=True)
        generate(key, key.with_suffix(".pub"))
        key.chmod(0o644)
        cli = Launchbay(tmp_path, home=home)
        res = cli.run("doctor", "--json", env={"PATH": _path_without("prometheus")})
        assert res.returncode == 3, res.output
        checks = {c["check"]: c for c in json.loads(res.stdout)["checks"]}
        failed = {name for name, c in checks.items() if c["status"] == "fail"}
        assert failed == {"prometheus", "gateway port", "signing key"}, res.output
        assert "no `prometheus` binary" in checks["prometheus"]["detail"]
        assert "apt-get install prometheus" in checks["prometheus"]["fix"]
        assert f"{port} is held by " in checks["gateway port"]["detail"]
        assert f"(pid {os.getpid()})" in checks["gateway port"]["detail"]
        assert f"pid {os.getpid()}" in checks["gateway port"]["fix"]
        assert "readable by others (mode 0644)" in checks["signing key"]["detail"]
        assert checks["signing key"]["fix"] == f"chmod 600 {key.resolve()}"
        # The same as text, with the fixes, for a person.
        text = cli.run("doctor", env={"PATH": _path_without("prometheus")})
        assert text.returncode == 3 and "Traceback" not in text.output
        assert "3 problem(s): prometheus, gateway port, signing key" in text.stdout
        assert text.stdout.count("fix: ") == 3
    key.chmod(0o600)
    fine = cli.run("doctor", "--json")
    assert fine.returncode == 0, fine.output
    statuses = {c["check"]: c["status"] for c in fine.json()["checks"]}
    assert statuses["prometheus"] == "ok" and statuses["gateway port"] == "ok", fine.output
    assert statuses["signing key"] == "ok" and statuses["ledger"] == "ok" and statuses["mlflow"] == "ok"


def test_unreachable_services_are_named_and_outside_a_project_only_the_machine_is_checked(
    tmp_path: Path,
) -> None:
    from harness import closed_port

    dead = closed_port()
    write_project(tmp_path, rows=200, overrides={
        "mlflow.tracking_uri": f"http://127.0.0.1:{dead}",
        "rollout.prometheus_url": f"http://127.0.0.1:{dead}",
        "rollout.ledger_url": f"postgresql://launchbay@127.0.0.1:{dead}/launchbay",
    })
    cli = Launchbay(tmp_path, home=tmp_path / ".launchbay")
    res = cli.run("doctor", "--json", "--timeout", "1")
    assert res.returncode == 3, res.output
    checks = {c["check"]: c for c in json.loads(res.stdout)["checks"]}
    for name in ("mlflow", "prometheus", "ledger"):
        assert checks[name]["status"] == "fail" and str(dead) in checks[name]["detail"], checks[name]
        assert checks[name]["fix"], checks[name]
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    alone = Launchbay(empty).run("doctor", "--json")
    names = [c["check"] for c in alone.json()["checks"]]
    assert names[0] == "project" and "ledger" not in names and "python" in names, alone.output


def test_an_environmental_failure_points_to_the_doctor(tmp_path: Path) -> None:
    write_project(tmp_path, rows=200, overrides={"mlflow.tracking_uri": "http://127.0.0.1:9"})
    res = Launchbay(tmp_path, home=tmp_path / ".launchbay").run("run", "--json", timeout=120)
    assert res.returncode == 3, res.output
    assert "`launchbay doctor` checks what this machine needs" in res.stderr
    assert shutil.which("prometheus"), "the suite needs Debian's prometheus (scripts/setup.sh installs it)"


def test_a_python_outside_requires_python_is_named_with_the_range(monkeypatch: pytest.MonkeyPatch) -> None:
    from launchbay import doctor

    monkeypatch.setattr(doctor.sys, "version_info", (3, 10, 4, "final", 0))
    python = next(f for f in doctor.examine(None, None) if f.check == "python")
    assert python.status == "fail" and "Python 3.10.4" in python.detail
    assert ">=3.11" in python.detail and "<3.14" in python.fix
    monkeypatch.setattr(doctor.sys, "version_info", (3, 13, 1, "final", 0))
    assert next(f for f in doctor.examine(None, None) if f.check == "python").status == "ok"
