"""The pipeline's steps, each a Hera `@script` template run by Hera's runner.

No `from __future__ import annotations` here: Hera reads the parameter annotations at runtime.

Called inside a `DAG` context, each function becomes a task; called anywhere else it is plain
Python. On Argo (and in launchbay's local executor) a step runs as
`python -m hera.workflows.runner -e pipelines.steps:<function> <inputs.json>` in its own process,
so steps share nothing in memory: they pass small values as output parameters (run id, model URI)
and find everything else in MLflow.

A gate that says no prints its problems to stderr and exits with status 1 (the task fails with a
readable message rather than a traceback); a step that breaks raises, and its traceback is what
the user sees.

Heavy imports (MLflow, Great Expectations, scikit-learn) happen inside the functions so that
rendering the workflow stays fast.
"""

import contextlib
import importlib
import sys
from typing import Annotated, Any

from hera.workflows import Parameter, script

from checks.report import GateReport
from launchbay.config import LaunchbayConfig, load_config
from launchbay.home import Home

# Pip requirements of the logged model, given explicitly: MLflow's inference of them costs ~8 s.
MODEL_REQUIREMENTS = ["scikit-learn==1.9.*", "skops", "numpy", "pandas"]


def _fail(message: str) -> None:
    """End a step as failed with a message for people (no traceback)."""
    print(message, file=sys.stderr, flush=True)
    raise SystemExit(1)


def _gate_message(report: GateReport, report_path: str) -> str:
    lines = [f"{report.gate} {report.verdict.value}: {len(report.problems)} problem(s)"]
    for c in report.problems:
        detail = f" ({c.detail})" if c.detail else ""
        lines.append(f"  - {c.verdict.value} {c.name}: observed {c.observed}, expected {c.expected}{detail}")
    lines.append(f"report: {report_path}")
    return "\n".join(lines)


def _context(config: str) -> tuple[LaunchbayConfig, Home]:
    return load_config(config), Home.resolve().ensure()


@script(name="validate-data", constructor="runner")
def validate_data(
    config: str, data: str, git_commit: Annotated[str, Parameter(name="git-commit")] = ""
) -> tuple[Annotated[str, Parameter(name="run-id")], Annotated[str, Parameter(name="data-digest")]]:
    """Open the MLflow run of this pipeline and check the data (schema, values, drift).

    Returns:
        The MLflow run id every later step writes to, and the sha256 of the data file.
    """
    import mlflow

    from checks.data_gate import check_data
    from pipelines import dataset, tracking

    cfg, home = _context(config)
    path = cfg.resolve_path(data)
    _, experiment_id = tracking.connect(cfg, home)
    tags = {"launchbay.model": cfg.model.name, "launchbay.data": path}
    if git_commit:
        tags["mlflow.source.git.commit"] = git_commit
    with mlflow.start_run(experiment_id=experiment_id, tags=tags) as run:
        run_id = run.info.run_id
        try:
            digest = dataset.file_digest(path)
        except OSError:
            digest = "unreadable"
        mlflow.log_params({"data.path": path, "data.digest": digest, "git.commit": git_commit or "none"})
        mlflow.set_tag("launchbay.data_digest", digest)

        report, frame = check_data(path, cfg)
        md, js = report.write(home.reports / run_id, "data_gate")
        mlflow.log_artifact(str(md), "reports")
        mlflow.log_artifact(str(js), "reports")
        mlflow.set_tag("launchbay.gate.data", report.verdict.value)
        if frame is not None:
            mlflow.log_metric("data.rows", len(frame))
        for c in report.checks:
            if c.column and "drift" in c.name and isinstance(c.observed, float):
                mlflow.log_metric(f"drift_psi.{c.column}", c.observed)
        if not report.verdict.ok:
            _fail(_gate_message(report, str(md)))  # leaving the `with` marks the run FAILED
    return run_id, digest


@script(name="train", constructor="runner")
def train(
    config: str, data: str, run_id: Annotated[str, Parameter(name="run-id")]
) -> Annotated[str, Parameter(name="model-uri")]:
    """Train the user's model on the training rows and log it to the run.

    Returns:
        The MLflow URI of the logged model (`models:/m-...`).
    """
    import mlflow
    import skops.io

    from checks.data_gate import read_frame
    from pipelines import dataset, tracking

    cfg, home = _context(config)
    tracking.connect(cfg, home)
    with mlflow.start_run(run_id=run_id):
        split = dataset.split(read_frame(cfg.resolve_path(data)), cfg)
        mlflow.log_params({f"model.{k}": v for k, v in cfg.model.params.items()})
        mlflow.log_params(
            {
                "model.train": cfg.model.train,
                "data.test_size": cfg.data.test_size,
                "data.split_seed": cfg.data.split_seed,
                "data.train_rows": len(split.train_y),
                "data.heldout_rows": len(split.test_y),
                "data.heldout_digest": split.test_digest,
            }
        )
        train_fn = _load_entrypoint(cfg.model.train)
        try:
            model = train_fn(split.train_x, split.train_y, dict(cfg.model.params))
        except Exception:
            mlflow.set_tag("launchbay.failed_step", "train")
            raise  # leaving the `with` marks the run FAILED; the traceback is the user's
        if not hasattr(model, "predict_proba"):
            _fail(f"{cfg.model.train} returned {type(model).__name__}, which has no predict_proba()")

        from mlflow.models import infer_signature

        sample = split.train_x.head(50)
        signature = infer_signature(sample, model.predict_proba(sample)[:, 1])
        # skops refuses to load types it does not know; the types this model needs are listed
        # with it. They come from our own training step, and the artefact is signed later.
        trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            pip_requirements=MODEL_REQUIREMENTS,
            skops_trusted_types=trusted,
        )
        mlflow.set_tag("launchbay.model_uri", info.model_uri)
    return str(info.model_uri)


@script(name="evaluate", constructor="runner")
def evaluate(
    config: str,
    data: str,
    run_id: Annotated[str, Parameter(name="run-id")],
    model_uri: Annotated[str, Parameter(name="model-uri")],
) -> Annotated[str, Parameter(name="champion-version")]:
    """Score the candidate and the current champion on the same held-out rows; apply the gate.

    Returns:
        The champion's version number it was compared with, or "none".
    """
    import mlflow

    from checks.data_gate import read_frame
    from checks.model_gate import Champion, judge, score
    from pipelines import dataset, tracking

    cfg, home = _context(config)
    client, _ = tracking.connect(cfg, home)
    threshold = cfg.gates.decision_threshold
    with mlflow.start_run(run_id=run_id):
        split = dataset.split(read_frame(cfg.resolve_path(data)), cfg)
        candidate = score(mlflow.sklearn.load_model(model_uri), split.test_x, split.test_y, threshold)
        mlflow.log_metrics(candidate.as_metrics("test_"))

        champion = None
        current = tracking.alias_version(client, cfg.model.name, tracking.CHAMPION)
        if current is not None:
            try:
                model = mlflow.sklearn.load_model(f"models:/{cfg.model.name}/{current.version}")
                champion = Champion(str(current.version), score(model, split.test_x, split.test_y, threshold))
                mlflow.log_metrics(champion.scores.as_metrics("champion_test_") if champion.scores else {})
            except Exception as exc:  # any failure to load or score: the gate says ERROR, not PASS
                champion = Champion(str(current.version), None, f"{type(exc).__name__}: {exc}")

        report = judge(candidate, champion, cfg.gates)
        md, js = report.write(home.reports / run_id, "model_gate")
        mlflow.log_artifact(str(md), "reports")
        mlflow.log_artifact(str(js), "reports")
        mlflow.set_tag("launchbay.gate.model", report.verdict.value)
        if not report.verdict.ok:
            _fail(_gate_message(report, str(md)))
    return champion.version if champion else "none"


@script(name="register", constructor="runner")
def register(
    config: str,
    run_id: Annotated[str, Parameter(name="run-id")],
    model_uri: Annotated[str, Parameter(name="model-uri")],
    data_digest: Annotated[str, Parameter(name="data-digest")],
) -> tuple[Annotated[str, Parameter(name="model-version")], Annotated[str, Parameter(name="aliases")]]:
    """Register the gated model; alias it `challenger`, and `champion` too when there is none yet.

    Returns:
        The new version number and the aliases it got (comma-separated).
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    from pipelines import tracking

    cfg, home = _context(config)
    client, _ = tracking.connect(cfg, home)
    name = cfg.model.name
    with contextlib.suppress(MlflowException):  # already registered
        client.create_registered_model(name, description=f"Registered by launchbay from {cfg.model.train}")
    run = client.get_run(run_id)
    tags = {
        "launchbay.run_id": run_id,
        "launchbay.data_digest": data_digest,
        "launchbay.gate.data": run.data.tags.get("launchbay.gate.data", ""),
        "launchbay.gate.model": run.data.tags.get("launchbay.gate.model", ""),
    }
    if commit := run.data.tags.get("mlflow.source.git.commit"):
        tags["launchbay.git_commit"] = commit
    # mlflow.register_model resolves a `models:/m-...` URI to its logged model (source, model_id,
    # run); a tracking server refuses a bare create_model_version with that source.
    version = mlflow.register_model(model_uri, name, tags=tags)
    aliases = [tracking.CHALLENGER]
    client.set_registered_model_alias(name, tracking.CHALLENGER, version.version)
    if tracking.alias_version(client, name, tracking.CHAMPION) is None:
        # Bootstrap: with no champion there is nothing to protect; the first good model serves.
        client.set_registered_model_alias(name, tracking.CHAMPION, version.version)
        aliases.append(tracking.CHAMPION)
    with mlflow.start_run(run_id=run_id):
        mlflow.set_tag("launchbay.registered_version", str(version.version))
    return str(version.version), ",".join(aliases)


def _load_entrypoint(entrypoint: str) -> Any:
    """Import `module:function`, with a message that names what is missing."""
    module_name, _, attr = entrypoint.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        _fail(f"model.train: cannot import module {module_name!r}: {exc}")
    fn = getattr(module, attr, None)
    if not callable(fn):
        _fail(f"model.train: {module_name!r} has no function {attr!r}")
    return fn
