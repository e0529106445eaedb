"""Given a real MLflow tracking server (not the embedded SQLite), the pipeline tracks and registers there."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from harness import Launchbay
from mlflow import MlflowClient


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    store = tmp_path / "server"
    store.mkdir()
    log = (store / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{store / 'mlflow.db'}",
            "--artifacts-destination",
            str(store / "artifacts"),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited: {(store / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            pytest.fail("mlflow server did not become healthy in 90 s")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its workers, by our child's PID
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.mark.slow
def test_pipeline_tracks_and_registers_on_a_tracking_server(
    mlflow_server: str, project: Callable[..., Path], lb_home: Path
) -> None:
    # Given a project whose config names nothing, and MLFLOW_TRACKING_URI pointing at a server
    config = project(rows=4000)
    # When the pipeline runs
    res = Launchbay(config.parent).run("run", "--no-rollout", env={"MLFLOW_TRACKING_URI": mlflow_server})
    # Then the run and the registered model live on the server, not in the local SQLite file
    assert res.returncode == 0, res.output
    assert f"tracking {mlflow_server}" in res.stdout
    client = MlflowClient(mlflow_server, mlflow_server)
    champion = client.get_model_version_by_alias("fraud-detector", "champion")
    assert champion.version == "1"
    assert client.get_run(champion.run_id).data.tags["launchbay.gate.model"] == "PASS"
    assert not (lb_home / "mlflow.db").exists()
