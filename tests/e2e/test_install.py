"""launchbay as a user installs it: a wheel in a fresh venv, run from a project outside this repo.

The wheel is built from the repository and installed (without dependencies) into a new venv
whose interpreter sees the dependencies of the test environment through a path entry -- not its
editable `launchbay`, whose import hook lives in a `.pth` file that path entries do not run. So
every `launchbay` module any process imports (the CLI, the steps, the gateway, the model server
and its Bento) comes from the wheel. Installing the ~180 dependencies again would cost minutes
and a gigabyte per run; that the wheel declares what it needs is checked against its metadata.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import Result
from projects import EXAMPLE, FAST_ROLLOUT

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SKIP = (".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".launchbay", "data", ".*_cache")


@dataclass
class Installed:
    venv: Path
    wheel: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def env(self, home: Path | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "MLFLOW_TRACKING_URI"}}
        env.pop("LAUNCHBAY_HOME", None)
        env.update({"PATH": f"{self.bin}{os.pathsep}{env.get('PATH', '')}", "COLUMNS": "200"})
        if home is not None:
            env["LAUNCHBAY_HOME"] = str(home)
        return env

    def run(
        self,
        *argv: str,
        cwd: Path,
        timeout: float = 600,
        home: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> Result:
        proc = subprocess.run(
            list(argv),
            cwd=cwd,
            env={**self.env(home), **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("install")
    # Build from a copy: the build writes build/ and *.egg-info beside the sources.
    src = work / "src"
    shutil.copytree(
        REPO,
        src,
        symlinks=True,  # launchbay/rollout -> ../rollout: the layout the build must follow
        ignore=shutil.ignore_patterns(*SKIP),
    )
    pip = [sys.executable, "-m", "pip"]
    built = subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(work), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = work.glob("launchbay-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = Path(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (site / "borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run(
        [*pip, "--python", str(venv / "bin" / "python"), "install", "--no-deps", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return Installed(venv, wheel)


def _example_copy(installed: Installed, project: Path, rows: int) -> Path:
    """The example repository copied to `project`, with its data made by its own script."""
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("data", ".launchbay", "__pycache__"))
    for seed, name in (("7", "reference"), ("1", "transactions")):
        made = installed.run(
            str(installed.bin / "python"),
            "fraud_data.py",
            "--seed",
            seed,
            "--rows",
            str(rows),
            "-o",
            f"data/{name}.parquet",
            cwd=project,
        )
        assert made.returncode == 0, made.output
    return project


def test_the_wheel_installs_one_top_level_package_with_everything_it_needs(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as whl:
        names = whl.namelist()
        top = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
        assert top == {"launchbay"}, top
        (top_level,) = [n for n in names if n.endswith("top_level.txt")]
        assert whl.read(top_level).decode().split() == ["launchbay"]
    for data in (
        "launchbay/pipelines/schemas/argo-workflows-v4.1.2.schema.json",
        "launchbay/rollout/schemas/gateway.networking.k8s.io_httproutes.yaml",
        "launchbay/rollout/schemas/serving.knative.dev_services.yaml",
    ):
        assert data in names, data
    probe = (
        "import importlib.metadata as md, json, launchbay, launchbay.rollout.engine.controller as c;"
        "from packaging.requirements import Requirement;"
        "reqs = [Requirement(r) for r in md.requires('launchbay') if 'extra ==' not in r];"
        "missing = [str(r) for r in reqs if not r.specifier.contains(md.version(r.name), prereleases=True)];"
        "print(json.dumps({'file': launchbay.__file__, 'controller': c.__file__, 'missing': missing}))"
    )
    res = installed.run(str(installed.bin / "python"), "-c", probe, cwd=installed.venv)
    assert res.returncode == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["file"].startswith(str(installed.venv)) and doc["controller"].startswith(str(installed.venv))
    assert doc["missing"] == []  # every declared dependency is satisfied by the tested set


def test_the_example_runs_from_a_copy_outside_the_repository(installed: Installed, tmp_path: Path) -> None:
    project = _example_copy(installed, tmp_path / "fraud-detector", rows=5000)
    lb = str(installed.bin / "launchbay")
    try:
        assert installed.run(lb, "keys", "init", cwd=project).returncode == 0
        res = installed.run(lb, "run", cwd=project)
        assert res.returncode == 0, res.output
        assert "fraud-detector@v1#1: promoted" in res.stdout  # the first version serves all traffic
        status = json.loads(installed.run(lb, "status", "--json", cwd=project).stdout)
        assert status["aliases"]["champion"]["version"] == 1
        assert (project / ".launchbay" / "ledger.db").exists()  # state in the project, not in the repo
    finally:
        installed.run(lb, "down", cwd=project, timeout=120)


USER_STEPS = """
from fraud_model import train as example
from pipelines.dataset import columns


def train(features, target, params):
    assert columns(features)[0] == "amount"
    return example(features, target, params)
"""
USER_PACKAGES = {
    # A data scientist's own packages, named like launchbay's parts and modules.
    "pipelines/__init__.py": "",
    "pipelines/dataset.py": "def file_digest(path):\n    return 'mine'\n\n\ndef columns(features):\n"
    "    return list(features.columns)\n",
    "pipelines/steps.py": USER_STEPS,
    "serving/__init__.py": "",
    "serving/service.py": "raise ImportError('the user\\'s serving/ must never be imported by launchbay')\n",
    "checks/__init__.py": "",
    "checks/data_gate.py": "raise ImportError('the user\\'s checks/ must never be imported by launchbay')\n",
    "rollout/spec.py": "raise ImportError('the user\\'s rollout/ (no __init__) must never be imported')\n",
}


def test_a_project_with_its_own_pipelines_serving_checks_and_rollout_packages_trains_and_registers(
    installed: Installed, tmp_path: Path
) -> None:
    project = _example_copy(installed, tmp_path / "mine", rows=4000)
    for rel, text in USER_PACKAGES.items():
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(text)
    config = project / "launchbay.yaml"
    config.write_text(
        config.read_text().replace(
            "  train: fraud_model:train",
            # The user's package and the example's feature module both ship with the model.
            "  train: pipelines.steps:train\n  code: [pipelines, fraud_model.py]",
        )
    )
    lb = str(installed.bin / "launchbay")
    assert installed.run(lb, "keys", "init", cwd=project).returncode == 0
    res = installed.run(lb, "run", "--until", "register", cwd=project)
    assert res.returncode == 0, res.output
    assert "Registered fraud-detector version 1" in res.stdout
    status = json.loads(installed.run(lb, "status", "--json", cwd=project).stdout)
    assert status["aliases"]["champion"]["version"] == 1


def test_init_in_an_empty_git_repository_then_a_rollout_and_a_promotion(
    installed: Installed, tmp_path: Path
) -> None:
    """The README's way in: install, `launchbay init` with a sample of your data, run, approve."""
    from sklearn.datasets import load_breast_cancer

    repo = tmp_path / "tumour-model"
    (repo / "data").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True, timeout=30)
    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame.to_csv(repo / "data" / "train.csv", index=False)
    lb = str(installed.bin / "launchbay")
    people = {"XDG_CONFIG_HOME": str(tmp_path / "people"), "LAUNCHBAY_USER": "dora"}

    def run(*args: str, timeout: float = 600) -> Result:
        return installed.run(lb, *args, cwd=repo, env=people, timeout=timeout)

    made = run("init", "--data", "data/train.csv", "--target", "target", "--approver", "alice")
    assert made.returncode == 0, made.output
    assert "30 feature(s) from data/train.csv" in made.stdout
    config = repo / "launchbay.yaml"
    doc = yaml.safe_load(config.read_text())
    assert (doc["model"]["name"], doc["model"]["task"]) == ("tumour-model", "binary")
    doc["rollout"].update({**FAST_ROLLOUT, "approval": doc["rollout"]["approval"]})
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert run("keys", "approver", "alice", "--public-key", "approvers/alice.pub").returncode == 0
    assert run("keys", "init").returncode == 0
    assert run("check").returncode == 0
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True, timeout=30)
    who = ["-c", "user.name=dora", "-c", "user.email=dora@example.com"]
    subprocess.run(["git", "-C", str(repo), *who, "commit", "-qm", "first"], check=True, timeout=30)
    assert "\n.launchbay/" in "\n" + (repo / ".gitignore").read_text()
    try:
        first = run("run")
        assert first.returncode == 0, first.output
        assert "tumour-model@v1#1: promoted" in first.stdout
        second = run("run", "--traffic", "40")
        assert second.returncode == 0, second.output
        assert "awaiting-approval" in second.stdout and "ROC AUC vs champion v1" in second.stdout
        approved = run("approve", "tumour-model", "--as", "alice", "--json")
        assert approved.returncode == 0, approved.output
        assert json.loads(approved.stdout)["phase"] == "promoted"
        status = json.loads(run("status", "--json").stdout)
        assert status["aliases"]["champion"]["version"] == 2
        assert status["aliases"]["champion"]["git_commit"]  # the repository's commit, recorded
        summary = run("status", "--markdown")  # what promote.yml writes to the job summary
        assert summary.returncode == 0 and "| champion | 2 |" in summary.stdout, summary.output
        assert "### tumour-model@v2#2: the analysis that decided it" in summary.stdout, summary.stdout
        assert (repo / ".launchbay" / "ledger.db").exists()
        # An 80-column terminal cuts no release id or name
        wholes = {
            ("status",): "tumour-model@v2#2",
            ("history", "tumour-model"): "#2 alice approved -> promoted",
        }
        for verb, whole in wholes.items():
            narrow = installed.run(lb, *verb, cwd=repo, env={**people, "COLUMNS": "80"})
            assert narrow.returncode == 0 and whole in narrow.stdout, narrow.output
            assert max(map(len, narrow.stdout.splitlines())) <= 80, narrow.stdout
        served = repo / ".launchbay" / "bentoml" / "bentos" / "tumour-model" / "v2" / "src" / "model.py"
        assert served.read_text() == (repo / "model.py").read_text()  # the user's code, in the Bento
    finally:
        installed.run(lb, "down", cwd=repo, timeout=120)


def _cluster_release(ctx: Any, clock: Any, tmp_path: Path, author: str, until: Callable[[Any], bool]) -> Any:
    """Versions 1 and 2 registered with pushed digests, 1 serving, a release of 2 ticked (healthy
    metrics, signatures taken as verified) until `until` holds or 120 ticks have passed."""
    from rollout_fakes import PASSED, Metrics, healthy_cluster

    from launchbay.rollout.engine import operations
    from launchbay.rollout.engine.controller import Controller
    from launchbay.rollout.targets import images
    from launchbay.rollout.targets.base import Routes

    name = ctx.cfg.model.name
    client = ctx.registry.client
    client.create_registered_model(name)
    for v in ("1", "2"):
        client.create_model_version(name, source=str(tmp_path / f"m{v}"))
        images.record(ctx.registry, ctx.cfg, name, v, f"ghcr.io/launchbay/{name}@sha256:{v * 64}", "ci")
    ctx.registry.set_alias(name, "champion", "1")
    ctx.target.deploy(name, "1")
    ctx.target.set_routes(Routes(stable=ctx.target.backend("1")))
    controller = Controller(ctx, Metrics(healthy_cluster()), clock=clock, verifier=lambda _c, _r: PASSED)
    release = operations.create(ctx, "2", author)
    for _ in range(120):
        release = controller.tick(release)
        clock.now += 1
        if until(release):
            break
    return release


HEAVY = {"scikit-learn", "pandas", "great-expectations", "bentoml", "onnxruntime", "mlflow", "hera"}
"""What on-call's install leaves out (the training, data-gate and serving stacks)."""
FIND_ONCALL = (
    "import importlib.resources as r; print(r.files('launchbay.rollout') / 'oncall-requirements.txt')"
)


def test_on_call_rolls_back_a_cluster_release_from_the_lean_install_alone(
    installed: Installed, tmp_path: Path
) -> None:
    """rollback.yml's install: the wheel without its dependencies, then oncall-requirements.txt."""
    from kube_fake import FakeApiServer, kubeconfig, serve
    from people import approvers
    from rollout_fakes import ROLLOUT, Clock

    from launchbay.config import load_config
    from launchbay.home import Home
    from launchbay.rollout import wiring
    from launchbay.rollout.engine.phases import Phase
    from launchbay.rollout.ledger.store import SqlLedger

    venv = tmp_path / "oncall"
    python = str(venv / "bin" / "python")
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    assert subprocess.run([*pip, "--no-deps", str(installed.wheel)], timeout=300).returncode == 0
    listing = subprocess.run(
        [python, "-c", FIND_ONCALL],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listing.returncode == 0, listing.stderr  # found without importing any dependency
    done = subprocess.run(
        [*pip, "-c", str(REPO / "constraints.txt"), "-r", listing.stdout.strip()],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    print(f"on-call install: {time.monotonic() - started:.1f} s")  # rollback.yml's setup, measured
    frozen = subprocess.run(
        [python, "-m", "pip", "list", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    names = {p["name"].lower() for p in json.loads(frozen.stdout)}
    assert not names & HEAVY, names & HEAVY

    # A release in canary on a cluster, driven by the full install (this process).
    fake = FakeApiServer()
    with serve(fake) as url:
        project, home = tmp_path / "project", tmp_path / "home"
        project.mkdir()
        (project / "launchbay.yaml").write_text(
            yaml.safe_dump(
                {
                    "model": {"name": "fraud-detector", "train": "model:train"},
                    "data": {"path": "d.csv", "features": {"x": {"type": "float"}}},
                    "mlflow": {"tracking_uri": f"sqlite:///{home / 'mlflow.db'}"},  # this test's own registry
                    "rollout": {
                        **ROLLOUT,
                        "target": "kubernetes",
                        "prometheus_url": "http://127.0.0.1:9",
                        "approval": {"required": True, "approvers": approvers("alice")},
                    },
                    "kubernetes": {
                        "namespace": "ml",
                        "kubeconfig": str(kubeconfig(tmp_path / "kubeconfig", url)),
                    },
                }
            )
        )
        cfg = load_config(project / "launchbay.yaml")
        clock = Clock()
        state = Home(home).ensure()
        ctx = wiring.rollout(cfg, state, SqlLedger(f"sqlite:///{home / 'ledger.db'}", clock=clock))
        in_canary = lambda r: r.phase is Phase.CANARY and bool(ctx.target.routes().canary_weight)  # noqa: E731
        release = _cluster_release(ctx, clock, tmp_path, "dana", in_canary)
        assert release.phase is Phase.CANARY

        env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "LAUNCHBAY_HOME": str(home), "HOME": str(tmp_path)}
        res = subprocess.run(
            [
                str(venv / "bin" / "launchbay"),
                "rollback",
                "fraud-detector",
                "--as",
                "oncall",
                "--reason",
                "pager",
                "--json",
            ],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 0, res.stdout + res.stderr
        assert json.loads(res.stdout)["phase"] == "rolled-back"
        route = fake.find("httproutes", "fraud-detector")
        assert route is not None
        assert [b["name"] for b in route["spec"]["rules"][0]["backendRefs"]] == ["fraud-detector-v1"]
        assert fake.find("deployments", "fraud-detector-v2") is None
        history = subprocess.run(
            [str(venv / "bin" / "launchbay"), "history", "fraud-detector"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert history.returncode == 0 and "oncall" in history.stdout, history.stdout + history.stderr


_EXPR = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")


class Runner:
    """A GitHub runner as far as `run:` steps go: each job's env with its expressions filled from
    the test's secrets and inputs, steps in order in bash -eo pipefail (GitHub's shell), `uses:`
    steps skipped (the checkout is the fresh clone; the Python is the venv on PATH), `if:` and
    step outputs honoured."""

    def __init__(self, checkout: Path, base_env: dict[str, str], secrets: dict[str, str]) -> None:
        self.checkout, self.base_env, self.secrets = checkout, base_env, secrets
        self.summary = checkout.parent / "summary.md"

    def _value(self, expr: str, inputs: dict[str, str], outputs: dict[str, str], env: dict[str, str]) -> str:
        if expr.startswith("secrets."):
            return self.secrets.get(expr.removeprefix("secrets."), "")
        if expr.startswith("inputs."):
            return inputs[expr.removeprefix("inputs.")]
        if expr.startswith("steps."):
            _, step, _, name = expr.split(".")
            return outputs.get(f"{step}.{name}", "")
        if expr.startswith("needs."):
            return ""
        if expr.startswith("github."):
            return {
                "github.actor": "dora",
                "github.triggering_actor": "oncall",
                "github.token": "t",
                "github.repository": "team/model",
                "github.run_id": "42",
            }[expr]
        if expr.startswith("env."):
            return env.get(expr.removeprefix("env."), "")
        raise AssertionError(f"an expression the test runner does not know: {expr}")

    def _fill(self, text: str, inputs: dict[str, str], outputs: dict[str, str], env: dict[str, str]) -> str:
        return _EXPR.sub(lambda m: self._value(m.group(1), inputs, outputs, env), str(text))

    def _if(self, cond: str, env: dict[str, str]) -> bool:
        ok = True
        for term in (t.strip() for t in cond.split("&&")):
            if term == "always()":
                continue
            m = re.fullmatch(r"env\.(\w+) (==|!=) ''", term)
            assert m is not None, f"a condition the test runner does not know: {cond}"
            empty = env.get(m.group(1), "") == ""
            ok = ok and (empty if m.group(2) == "==" else not empty)
        return ok

    def job(
        self,
        workflow: str,
        job: str,
        inputs: dict[str, str] | None = None,
        overrides: dict[str, str] | None = None,
    ) -> list[tuple[str, Result]]:
        doc = yaml.safe_load((self.checkout / ".github" / "workflows" / workflow).read_text())
        inputs, outputs, ran = inputs or {}, {}, []
        env = dict(self.base_env)
        for scope in (doc.get("env") or {}, doc["jobs"][job].get("env") or {}):
            env.update({k: self._fill(v, inputs, outputs, env) for k, v in scope.items()})
        env.update(overrides or {})
        for step in doc["jobs"][job]["steps"]:
            if "uses" in step or ("if" in step and not self._if(step["if"], env)):
                continue
            output_file = self.checkout.parent / "github-output"
            output_file.write_text("")
            step_env = {
                **env,
                **{k: self._fill(v, inputs, outputs, env) for k, v in (step.get("env") or {}).items()},
                "GITHUB_OUTPUT": str(output_file),
                "GITHUB_STEP_SUMMARY": str(self.summary),
            }
            proc = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                cwd=self.checkout,
                env=step_env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            result = Result(proc.returncode, proc.stdout, proc.stderr)
            ran.append((step.get("name", step["run"][:40]), result))
            assert result.returncode == 0, f"{workflow} {job} / {step.get('name')}: {result.output}"
            for line in output_file.read_text().splitlines():
                if "=" in line and "id" in step:
                    name, value = line.split("=", 1)
                    outputs[f"{step['id']}.{name}"] = value
        return ran


def test_the_workflows_init_writes_run_from_a_fresh_checkout_against_the_cluster(
    installed: Installed, tmp_path: Path
) -> None:
    """Each `run:` step of the pipeline, promote and rollback workflows, on a clone of the repository
    `launchbay init` made, with the secrets pointing at this test's servers: a fake Argo server,
    a fake Kubernetes API server, SQLite ledger and MLflow store shared with the test."""
    from argo_fake import FakeArgo, serve_argo
    from kube_fake import FakeApiServer, kubeconfig, serve
    from rollout_fakes import Clock
    from sklearn.datasets import load_breast_cancer

    from launchbay.checks import approvals
    from launchbay.config import load_config
    from launchbay.home import Home
    from launchbay.rollout import wiring
    from launchbay.rollout.engine.phases import Phase
    from launchbay.rollout.ledger.store import SqlLedger

    repo = tmp_path / "model-repo"
    (repo / "data").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True, timeout=30)
    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame.head(200).to_csv(repo / "data" / "train.csv", index=False)
    people = {"XDG_CONFIG_HOME": str(tmp_path / "people"), "LAUNCHBAY_USER": "dora"}
    lb = str(installed.bin / "launchbay")
    made = installed.run(
        lb,
        "init",
        "--data",
        "data/train.csv",
        "--target",
        "target",
        "--approver",
        "alice",
        cwd=repo,
        env=people,
    )
    assert made.returncode == 0, made.output
    assert (
        installed.run(
            lb, "keys", "approver", "alice", "--public-key", "approvers/alice.pub", cwd=repo, env=people
        ).returncode
        == 0
    )
    keys = installed.run(lb, "keys", "init", cwd=repo, env=people)
    assert keys.returncode == 0 and "keys/signing-key.pub" in keys.stdout, keys.output
    workflow_key = tmp_path / "github-production.pem"
    approvals.generate(workflow_key, repo / "approvers" / "github-production.pub")
    config = repo / "launchbay.yaml"
    doc = yaml.safe_load(config.read_text())
    doc["rollout"].update(
        {
            **FAST_ROLLOUT,
            "target": "kubernetes",
            "prometheus_url": "http://127.0.0.1:9",
            "approval": {
                **doc["rollout"]["approval"],
                "workflows": {"github-production": "approvers/github-production.pub"},
            },
        }
    )
    doc["kubernetes"] = {"namespace": "ml"}
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    who = ["-c", "user.name=dora", "-c", "user.email=dora@example.com"]
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True, timeout=30)
    subprocess.run(["git", "-C", str(repo), *who, "commit", "-qm", "first"], check=True, timeout=30)
    checkout = tmp_path / "runner" / "checkout"
    subprocess.run(["git", "clone", "-q", str(repo), str(checkout)], check=True, timeout=60)
    assert not (checkout / ".launchbay").exists() and (checkout / "keys" / "signing-key.pub").exists()

    lint = subprocess.run(
        [str(Path(sys.executable).parent / "actionlint")],
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr

    # The runner's Python: a venv whose pip installs the wheel with the dependencies already there.
    wf = tmp_path / "runner" / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(wf)], check=True, timeout=300)
    site = subprocess.run(
        [str(wf / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    fakebin = tmp_path / "runner" / "bin"
    fakebin.mkdir()
    (fakebin / "gh").write_text("#!/bin/sh\n# GitHub's API: the run's approved reviewer\necho alice\n")
    (fakebin / "gh").chmod(0o755)
    state = tmp_path / "state"
    ledger_url, mlflow_uri = f"sqlite:///{state / 'ledger.db'}", f"sqlite:///{state / 'mlflow.db'}"
    fake = FakeApiServer()
    with serve(fake) as url, serve_argo() as argo:
        kube = kubeconfig(tmp_path / "kubeconfig", url)
        # Version 2 waiting for approval in the cluster, as the workflow's release step leaves it.
        cfg = load_config(checkout / "launchbay.yaml")
        cfg = cfg.model_copy(
            update={
                "kubernetes": cfg.kubernetes.model_copy(update={"kubeconfig": str(kube)}),
                "mlflow": cfg.mlflow.model_copy(update={"tracking_uri": mlflow_uri}),
            }
        )
        clock = Clock()
        ctx = wiring.rollout(cfg, Home(state).ensure(), SqlLedger(ledger_url, clock=clock))
        name = cfg.model.name
        release = _cluster_release(ctx, clock, tmp_path, "dora", lambda r: r.phase is Phase.AWAITING_APPROVAL)
        assert release.phase is Phase.AWAITING_APPROVAL

        home = tmp_path / "runner" / "home"
        home.mkdir()
        base = {
            "PATH": f"{fakebin}:{wf / 'bin'}:/usr/bin:/bin",
            "HOME": str(home),
            "RUNNER_TEMP": str(tmp_path),
            "GITHUB_SHA": "0" * 40,
            "PIP_NO_DEPS": "1",
            "PIP_NO_INDEX": "1",
            "COLUMNS": "200",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
        secrets = {
            "LAUNCHBAY_LEDGER_URL": ledger_url,
            "MLFLOW_TRACKING_URI": mlflow_uri,
            "KUBECONFIG": kube.read_text(),
            "LAUNCHBAY_APPROVER_KEY": workflow_key.read_text(),
            "ARGO_SERVER": argo,
            "ARGO_TOKEN": "argo-token",
        }
        runner = Runner(checkout, base, secrets)
        package = {"LAUNCHBAY_PACKAGE": str(installed.wheel)}  # what the runner's index would serve

        # The pipeline: checked, rendered, submitted to Argo on the pipeline image's digest.
        pushed = f"ghcr.io/team/pipeline@sha256:{'e' * 64}"
        ran = runner.job(
            "launchbay-pipeline.yml", "pipeline", overrides={**package, "PIPELINE_IMAGE": pushed}
        )
        assert [n for n, _ in ran][-1] == "Submit to Argo, on the pipeline image's digest"
        submitted = FakeArgo.received[-1]
        assert submitted["auth"] == "Bearer argo-token"
        assert set(re.findall(r'"image": "([^"]+)"', json.dumps(submitted["body"]))) == {pushed}

        # Promote: the evidence first (in the job summary), then the approval by the reviewer.
        runner.job("launchbay-promote.yml", "evidence", {"release": name}, package)
        assert f"{name}@v2#{release.id}" in runner.summary.read_text()
        runner.job("launchbay-promote.yml", "approve", {"release": name}, package)
        promoted = ctx.ledger.get(release.id)
        assert promoted.phase is Phase.PROMOTED
        approved = [e for e in ctx.ledger.history(release_id=release.id) if e.phase_to == "promoted"]
        assert len(approved) == 1 and "github-production" in json.dumps(approved[0].to_dict()), approved
        route = fake.find("httproutes", name)
        assert route is not None
        assert [b["name"] for b in route["spec"]["rules"][0]["backendRefs"]] == [f"{name}-v2"]

        # On-call's rollback: its own lean install, then the rollback and the event log.
        ran = runner.job("launchbay-rollback.yml", "rollback", {"model": name, "reason": "pager"}, package)
        assert "oncall" in ran[-1][1].stdout
