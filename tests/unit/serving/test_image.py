"""The serving image's build context, checked by a Dockerfile linter and run the way its Dockerfile says.

No Docker engine runs here: the test applies the Dockerfile's own WORKDIR/COPY/CMD to a directory
(the image's file system, minus the base image's Python) and starts the CMD from it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
from model_dirs import flip_byte
from projects import RISKY_ROW

from launchbay import procs
from launchbay.serving.image import PORT, image_context

HADOLINT = Path(sys.executable).parent / "hadolint"


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", dockerfile.read_text())  # continuation lines
    out = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _filesystem(context: Path, root: Path) -> tuple[Path, list[str]]:
    """The image's files as its COPY lines lay them out; (WORKDIR, CMD)."""
    workdir, cmd = root, []
    for word, rest in _instructions(context / "Dockerfile"):
        if word == "WORKDIR":
            workdir = root / rest.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif word == "COPY":
            *sources, dest = rest.split()
            for source in sources:
                src, dst = context / source, workdir / dest
                assert src.exists(), f"COPY {source}: not in the build context"
                if src.is_dir():
                    shutil.copytree(src, dst, dirs_exist_ok=True)
                elif dest.endswith("/"):
                    dst.mkdir(parents=True, exist_ok=True)
                    shutil.copy(src, dst / src.name)
                else:
                    shutil.copy(src, dst)
        elif word == "CMD":
            cmd = json.loads(rest)
    return workdir, cmd


def test_the_dockerfile_passes_hadolint_and_runs_non_root_on_the_probed_port(
    bento: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    src, signed, _ = bento
    pkg = image_context(src, signed, tmp_path, "fraud-detector", "3")
    assert pkg.directory == tmp_path / "fraud-detector-v3-image" and pkg.variant == "onnx"
    lint = subprocess.run([str(HADOLINT), str(pkg.archive)], capture_output=True, text=True, timeout=60)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    words = dict(_instructions(pkg.archive))
    assert words["USER"] == "10001:10001" and words["EXPOSE"] == str(PORT) == "3000"
    assert words["FROM"].startswith("python:3.11-")
    # Pinned: the image is built from the versions this launchbay was tested with.
    requirements = (pkg.directory / "requirements.txt").read_text().split()
    assert all("==" in r for r in requirements), requirements
    assert {r.split("==")[0] for r in requirements} >= {"onnxruntime", "numpy", "cryptography", "uvicorn"}
    assert "launchbay record-image fraud-detector@3" in (pkg.directory / "README.md").read_text()


def test_the_image_verifies_then_serves_and_needs_nothing_its_requirements_do_not_install(
    bento: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    src, signed, key = bento
    pkg = image_context(src, signed, tmp_path / "out", "fraud-detector", "3")
    workdir, cmd = _filesystem(pkg.directory, tmp_path / "image")
    assert cmd[:3] == ["python", "-m", "launchbay.serving.lean"] and cmd[cmd.index("--port") + 1] == "3000"
    env = {"PATH": "/usr/bin:/bin", "LAUNCHBAY_TRUSTED_KEYS": str(key)}  # as the pod's env gives it
    # The image's Python: a fresh environment with nothing but what the Dockerfile's RUN installs.
    python = _installed(pkg.directory / "requirements.txt", tmp_path / "python")

    port = procs.free_port()
    argv = [str(python), *cmd[1:]]
    argv[argv.index("--port") + 1] = str(port)
    argv[argv.index("--host") + 1] = "127.0.0.1"  # 0.0.0.0 in the pod; loopback here
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(argv, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        assert procs.wait_http(f"http://127.0.0.1:{port}/readyz", 60, server.pid), procs.tail(log.name)
        answer = httpx.post(f"http://127.0.0.1:{port}/predict", json={"row": RISKY_ROW}, timeout=10)
        assert answer.status_code == 200 and answer.json()["predictions"][0]["prediction"] == 1, answer.text
    finally:
        assert procs.stop(server.pid) == []
    assert server.wait(10) is not None
    log.close()

    # A changed byte in the model: the container exits 1 naming it, and never listens.
    flip_byte(next(p for p in (workdir / "model").rglob("*.onnx")))
    port = procs.free_port()
    argv[argv.index("--port") + 1] = str(port)
    refused = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "refusing to serve" in refused.stderr, refused.stderr
    assert procs.port_free(port)


def _installed(requirements: Path, venv: Path) -> Path:
    """`pip install --requirement` into a new virtual environment; its python."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    res = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--requirement", str(requirements)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    return venv / "bin" / "python"
