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
import os
import shutil
import sys
from typing import Annotated, Any

from hera.workflows import Parameter, script

from launchbay.checks.report import GateReport
from launchbay.config import LaunchbayConfig, load_config
from launchbay.home import Home
from launchbay.registry import CHALLENGER, CHAMPION, MlflowRegistry


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


def _context(config: str) -> tuple[LaunchbayConfig, Home, MlflowRegistry]:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    cfg = load_config(config)
    home = Home.resolve(cfg.source).ensure()
    registry = MlflowRegistry(cfg, home)
    _ = registry.client  # connect now: MLflow's fluent API (start_run, log_*) uses the URI it sets
    return cfg, home, registry


@script(name="validate-data", constructor="runner")
def validate_data(
    config: str, data: str, git_commit: Annotated[str, Parameter(name="git-commit")] = "", reference: str = ""
) -> tuple[Annotated[str, Parameter(name="run-id")], Annotated[str, Parameter(name="data-digest")]]:
    """Open the MLflow run of this pipeline and check the data (schema, values, drift against
    `reference`, default `data.reference`).

    Returns:
        The MLflow run id every later step writes to, and the sha256 of the data file.
    """
    import mlflow

    from launchbay.checks import data_gate_cache
    from launchbay.checks.data_gate import check_data
    from launchbay.pipelines import dataset

    cfg, home, registry = _context(config)
    if reference:
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"reference": reference})})
    path = cfg.resolve_path(data)
    experiment_id = registry.experiment_id
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

        # The same bytes under the same rules: the same report, said to be reused.
        kept = home.cache / "data-gate"
        name = None if digest == "unreadable" else data_gate_cache.key(cfg, digest)
        report = data_gate_cache.load(kept, name, path) if name else None
        if report is None:
            report, frame = check_data(path, cfg)
            if name and frame is not None:
                data_gate_cache.save(kept, name, report)
        md, js = report.write(home.reports / run_id, "data_gate")
        mlflow.log_artifact(str(md), "reports")
        mlflow.log_artifact(str(js), "reports")
        mlflow.set_tag("launchbay.gate.data", report.verdict.value)
        if isinstance(report.summary.get("rows"), int):
            mlflow.log_metric("data.rows", report.summary["rows"])
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

    from launchbay.checks.data_gate import read_frame
    from launchbay.pipelines import dataset, preflight

    cfg, _, _ = _context(config)
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
        except Exception as exc:
            mlflow.set_tag("launchbay.failed_step", "train")
            if os.environ.get(preflight.DEBUG_ENV):
                raise
            # The user's own frames, not twenty of Hera's runner and pydantic's around them.
            _fail(preflight.user_frames(exc, cfg.base_dir, f"model.train ({cfg.model.train})"))

        from launchbay.errors import ConfigError
        from launchbay.pipelines.model_log import classes_of, log_model
        from launchbay.serving.artefact import Predictor
        from launchbay.serving.inputs import model_input

        try:
            predictor = Predictor(cfg.model.task, model, classes_of(model, cfg))
            sample = split.train_x.head(50)
            output = predictor.output(model_input(model, sample, list(cfg.data.features)))
            info = log_model(model, cfg, predictor.classes, sample, output)
        except ConfigError as exc:
            _fail(exc.message)
        mlflow.set_tag("launchbay.model_uri", info.model_uri)
        _log_train_rows(split.train_x, split.train_y)
    return str(info.model_uri)


def _log_train_rows(x: Any, y: Any) -> None:
    """Keep a digest of each training row with the run: a later challenger's gate leaves out the
    held-out rows this model learned from when it compares with it (`checks.leakage`)."""
    import tempfile
    from pathlib import Path

    import mlflow
    import numpy as np

    from launchbay.checks.leakage import TRAIN_ROWS_ARTIFACT, digests

    with tempfile.TemporaryDirectory(prefix="launchbay-rows-") as tmp:
        path = Path(tmp) / Path(TRAIN_ROWS_ARTIFACT).name
        np.save(path, digests(x, y))
        mlflow.log_artifact(str(path), str(Path(TRAIN_ROWS_ARTIFACT).parent))


def _champion_train_rows(registry: Any, model: str, version: str, tmp: str) -> Any:
    """The digests of the champion's training rows, or None when its run did not keep them."""
    import mlflow
    import numpy as np

    from launchbay.checks.leakage import TRAIN_ROWS_ARTIFACT

    run_id = registry.get(model, version).run_id
    if not run_id:
        return None
    try:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=TRAIN_ROWS_ARTIFACT, dst_path=tmp
        )
    except Exception:  # an MLflow that has no such artifact says so in several ways
        return None
    return np.load(local)


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
    import tempfile
    from pathlib import Path

    import mlflow

    from launchbay.checks import live_reference
    from launchbay.checks.data_gate import read_frame
    from launchbay.checks.difference import OFFLINE_TAG
    from launchbay.checks.leakage import digests, overlap
    from launchbay.checks.model_gate import Champion, judge, score
    from launchbay.pipelines import dataset
    from launchbay.serving.artefact import load
    from launchbay.serving.inputs import model_input

    cfg, home, registry = _context(config)
    with mlflow.start_run(run_id=run_id), tempfile.TemporaryDirectory(prefix="launchbay-evaluate-") as tmp:
        split = dataset.split(read_frame(cfg.resolve_path(data)), cfg)
        features = list(cfg.data.features)

        outputs: dict[str, tuple[Any, list[Any] | None]] = {}

        def measure(uri: str) -> Any:
            # The files that will be signed and served, loaded the way the service loads them.
            local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tempfile.mkdtemp(dir=tmp))
            predictor = load(Path(local))
            output = predictor.output(model_input(predictor.model, split.test_x, features))
            outputs[uri] = (output, predictor.classes)
            return score(
                output,
                split.test_y,
                task=cfg.model.task,
                classes=predictor.classes,
                threshold=cfg.gates.decision_threshold,
            )

        candidate = measure(model_uri)
        mlflow.log_metrics(candidate.as_metrics("test_"))
        # What launchbay's monitor compares this model's live traffic with, once it serves.
        reference = live_reference.build(
            cfg.model.task,
            {f: split.train_x[f].tolist() for f in features},
            {f: spec.type in ("category", "bool") for f, spec in cfg.data.features.items()},
            outputs[model_uri][0],
            outputs[model_uri][1],
            split.test_y,
            cfg.gates.decision_threshold,
        )
        mlflow.log_text(reference.to_json(), live_reference.REFERENCE_ARTIFACT)

        champion = None
        offline = None
        current = registry.alias(cfg.model.name, CHAMPION)
        if current is not None:
            try:
                champion_uri = f"models:/{cfg.model.name}/{current}"
                champion = Champion(current, measure(champion_uri))
                mlflow.log_metrics(champion.scores.as_metrics("champion_test_") if champion.scores else {})
            except Exception as exc:  # any failure to load or score: the gate says ERROR, not PASS
                champion = Champion(current, None, f"{type(exc).__name__}: {exc}")
            else:
                offline = _offline_difference(
                    cfg, split.test_x, current, outputs[model_uri], outputs[champion_uri]
                )

        leak = None
        compared = None
        if champion is not None and champion.scores is not None:
            # Rows the champion trained on would flatter it: compare on the ones neither saw.
            leak = overlap(
                digests(split.test_x, split.test_y),
                _champion_train_rows(registry, cfg.model.name, champion.version, tmp),
                champion.version,
                cfg.gates.leakage,
                cfg.gates.min_unseen_rows,
            )
            if leak.unseen is not None:
                compared, champion = _on_rows(cfg, split.test_y, leak.unseen, outputs, model_uri, champion)
        report = judge(candidate, champion, cfg.gates, cfg.champion_metrics, compared=compared)
        if leak is not None:
            report.checks.append(leak.check)
        if offline is not None:
            # What shadow will compare live answers with (`rollout.shadow`: judged against this).
            report.summary[f"answers vs champion v{current} (offline)"] = offline.describe()
            mlflow.set_tag(OFFLINE_TAG, offline.to_json())
        md, js = report.write(home.reports / run_id, "model_gate")
        mlflow.log_artifact(str(md), "reports")
        mlflow.log_artifact(str(js), "reports")
        mlflow.set_tag("launchbay.gate.model", report.verdict.value)
        if not report.verdict.ok:
            _fail(_gate_message(report, str(md)))
    return champion.version if champion else "none"


def _on_rows(
    cfg: Any, target: Any, rows: Any, outputs: dict[str, Any], candidate_uri: str, champion: Any
) -> tuple[Any, Any]:
    """Both models' scores on the held-out `rows` (a mask) only, from the outputs already made."""
    import numpy as np

    from launchbay.checks.model_gate import Champion, score

    def on(uri: str) -> Any:
        output, classes = outputs[uri]
        return score(np.asarray(output)[rows], np.asarray(target)[rows], task=cfg.model.task,
                     classes=classes, threshold=cfg.gates.decision_threshold)  # fmt: skip

    champion_uri = f"models:/{cfg.model.name}/{champion.version}"
    return on(candidate_uri), Champion(champion.version, on(champion_uri))


def _offline_difference(
    cfg: Any, rows: Any, against: str, challenger: tuple[Any, Any], champion: tuple[Any, Any]
) -> Any:
    """The challenger's answers against the champion's on the distinct held-out rows."""
    import numpy as np

    from launchbay.checks.difference import difference, distinct

    keep = distinct(rows[list(cfg.data.features)])
    return difference(
        np.asarray(challenger[0])[keep],
        np.asarray(champion[0])[keep],
        against=against,
        task=cfg.model.task,
        challenger_classes=challenger[1],
        champion_classes=champion[1],
        threshold=cfg.gates.decision_threshold,
    )


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

    from launchbay.checks.difference import OFFLINE_TAG

    cfg, _, registry = _context(config)
    client = registry.client
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
    if offline := run.data.tags.get(OFFLINE_TAG):
        tags[OFFLINE_TAG] = offline  # what shadow judges the live answers against
    if commit := run.data.tags.get("mlflow.source.git.commit"):
        tags["launchbay.git_commit"] = commit
    # mlflow.register_model resolves a `models:/m-...` URI to its logged model (source, model_id,
    # run); a tracking server refuses a bare create_model_version with that source.
    version = mlflow.register_model(model_uri, name, tags=tags)
    aliases = [CHALLENGER]
    registry.set_alias(name, CHALLENGER, version.version)
    if registry.alias(name, CHAMPION) is None:
        # Bootstrap: with no champion there is nothing to protect; the first good model serves.
        registry.set_alias(name, CHAMPION, version.version)
        aliases.append(CHAMPION)
    with mlflow.start_run(run_id=run_id):
        mlflow.set_tag("launchbay.registered_version", str(version.version))
    return str(version.version), ",".join(aliases)


@script(name="sign", constructor="runner")
def sign_model(
    config: str,
    data: str,
    run_id: Annotated[str, Parameter(name="run-id")],
    model_version: Annotated[str, Parameter(name="model-version")],
    data_digest: Annotated[str, Parameter(name="data-digest")],
) -> tuple[
    Annotated[str, Parameter(name="signature-digest")], Annotated[str, Parameter(name="serving-variant")]
]:
    """Make the ONNX variant, sign the registered model with provenance, and store the signature
    with its artefacts.

    The model directory gets `serving.json` (the request schema), the ONNX variant when it
    converts and matches the native model on the held-out rows (`onnx/`, see
    `launchbay.serving.onnx_variant`; the report says why not otherwise) and `provenance.json`
    (an in-toto Statement: model digest, git commit, data digest, run id, gate report digests,
    the variant), then `model.sig` over all of it. The files are added to the logged model in
    MLflow and the signature's digest is recorded on the registry version.

    Returns:
        sha256 of the signature bundle, and what will be served: `onnx` or `native`.
    """
    import tempfile
    from pathlib import Path

    import mlflow

    from launchbay.checks import card, provenance
    from launchbay.checks.keys import signing_key
    from launchbay.checks.signature import SIGNATURE_FILE, SigningError, file_sha256, sign, tree_digest
    from launchbay.registry import tracking_uri
    from launchbay.serving.artefact import metadata
    from launchbay.serving.lean_model import VARIANT_DIR
    from launchbay.serving.spec import ServingSpec

    cfg, home, registry = _context(config)
    client = registry.client
    version = registry.get(cfg.model.name, model_version)
    run = client.get_run(run_id)
    with tempfile.TemporaryDirectory(prefix="launchbay-sign-") as tmp:
        model_dir = registry.download(version, Path(tmp) / "model")
        trained = (metadata(model_dir).get("metadata") or {}).get("launchbay") or {}
        ServingSpec.from_config(cfg, model_version, trained.get("classes")).write(model_dir)
        variant = _onnx_variant(cfg, home, data, data_digest, run_id, model_dir)
        reports_dir = Path(
            mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path="reports", dst_path=str(Path(tmp) / "reports")
            )
        )
        gates = {k.removeprefix("launchbay.gate."): v for k, v in run.data.tags.items()
                 if k.startswith("launchbay.gate.")}  # fmt: skip
        reports = {p.name: file_sha256(p) for p in sorted(reports_dir.iterdir())}
        facts = card.CardFacts(
            model=cfg.model.name, version=str(model_version), task=cfg.model.task, data_path=data,
            data_digest=data_digest, target=cfg.data.target,
            features={k: v.type for k, v in cfg.data.features.items()},
            metrics={k[len("test_"):]: v for k, v in run.data.metrics.items() if k.startswith("test_")},
            gates=gates, reports=reports,
            git_commit=run.data.tags.get("mlflow.source.git.commit", ""), training_run=run_id,
            tracking_uri=tracking_uri(cfg, home), params=dict(cfg.model.params),
            description=cfg.model.description, intended_use=cfg.model.intended_use,
            limitations=cfg.model.limitations, serving=_served_as(variant),
        )  # fmt: skip
        card_text = card.render(facts)
        (model_dir / card.CARD_FILE).write_text(card_text)  # signed with the model's files
        doc = provenance.statement(
            model=cfg.model.name,
            version=str(model_version),
            model_digest=tree_digest(model_dir, exclude=(SIGNATURE_FILE, provenance.PROVENANCE_FILE)),
            git_commit=run.data.tags.get("mlflow.source.git.commit", ""),
            data_digest=data_digest,
            run_id=run_id,
            tracking_uri=tracking_uri(cfg, home),
            reports=reports,
            gates=gates,
            variants=variant,
            model_card=card.digest(card_text),
        )
        provenance.write(model_dir, doc)
        try:
            sig = sign(model_dir, signing_key(cfg, home))
        except SigningError as exc:
            _fail(str(exc))
        staged = Path(tmp) / "signed"
        staged.mkdir()
        for name in (SIGNATURE_FILE, provenance.PROVENANCE_FILE, "serving.json", card.CARD_FILE):
            (staged / name).write_bytes((model_dir / name).read_bytes())
        if (model_dir / VARIANT_DIR).is_dir():
            shutil.copytree(model_dir / VARIANT_DIR, staged / VARIANT_DIR)
        client.log_model_artifacts(version.model_id, str(staged))
        digest = file_sha256(sig)
    registry.tag(cfg.model.name, model_version, "launchbay.signature_sha256", digest)
    registry.tag(
        cfg.model.name, model_version, "launchbay.model_digest", doc["subject"][0]["digest"]["sha256"]
    )
    served = "onnx" if "onnx" in variant else "native"
    registry.tag(cfg.model.name, model_version, "launchbay.serving_variant", served)
    return digest, served


def _served_as(variant: dict[str, Any]) -> str:
    """What will be served, in words, for the model card."""
    if "onnx" in variant:
        return "the ONNX variant, matching the native model on the held-out rows"
    return f"the native model ({variant.get('native', 'no ONNX variant')})"


def _onnx_variant(
    cfg: LaunchbayConfig, home: Home, data: str, data_digest: str, run_id: str, model_dir: Any
) -> dict[str, Any]:
    """Make the ONNX variant in `model_dir` if it converts and matches the native model on the
    held-out rows; write and log its report. Returns what provenance records of it."""
    import json

    from launchbay.checks.data_gate import read_frame
    from launchbay.checks.signature import file_sha256
    from launchbay.pipelines import dataset
    from launchbay.serving import onnx_variant
    from launchbay.serving.lean_model import GRAPH_FILE, variant_dir

    if not cfg.serving.onnx.enabled:
        return {"native": "serving.onnx.enabled is false"}
    path = cfg.resolve_path(data)
    if dataset.file_digest(path) != data_digest:
        # The held-out rows must be the ones the gates saw; a file changed since is not them.
        return {"native": f"the data file {path} changed since validate-data: not converted"}
    split = dataset.split(read_frame(path), cfg)
    # The rows as requests carry them: JSON values (None, not NaN; bools, not numpy's).
    rows = json.loads(split.test_x[list(cfg.data.features)].to_json(orient="values"))
    report = onnx_variant.make_variant(model_dir, rows, cfg.serving.onnx.tolerance)
    md, js = report.write(home.reports / run_id, "onnx_variant")
    client = MlflowRegistry(cfg, home).client
    client.log_artifact(run_id, str(md), "reports")
    client.log_artifact(run_id, str(js), "reports")
    print(
        f"onnx variant {report.verdict.value}: served {report.summary.get('served')}"
        + "".join(f"\n  - {c.name}: {c.observed} ({c.detail})" for c in report.problems),
        file=sys.stderr,
        flush=True,
    )
    if not report.verdict.ok:
        reasons = "; ".join(f"{c.name}: {c.detail or c.observed}" for c in report.problems)
        return {"native": reasons}
    graph = variant_dir(model_dir) / GRAPH_FILE
    return {"onnx": {"sha256": file_sha256(graph), "parity": onnx_variant.parity_of(model_dir)}}


@script(name="package", constructor="runner")
def package(
    config: str,
    model_version: Annotated[str, Parameter(name="model-version")],
) -> Annotated[str, Parameter(name="bento")]:
    """Verify the signed model against the trusted keys and package it as a Bento.

    Returns:
        The Bento's tag (`<model>:v<version>`).
    """
    import tempfile
    from pathlib import Path

    from launchbay.checks.keys import trusted_keys
    from launchbay.checks.signature import verify
    from launchbay.errors import UsageError
    from launchbay.serving import package as bento

    cfg, home, registry = _context(config)
    bento.use_store(home)
    version = registry.get(cfg.model.name, model_version)
    with tempfile.TemporaryDirectory(prefix="launchbay-package-") as tmp:
        model_dir = registry.download(version, Path(tmp) / "model")
        result = verify(model_dir, trusted_keys(cfg, home))
        if not result.verdict.ok:
            _fail(f"signature check {result.verdict.value}: {result.message}")
        try:
            tag = bento.build_for(cfg, model_dir, str(model_version))
        except UsageError as exc:
            _fail(exc.message)
    registry.tag(cfg.model.name, model_version, "launchbay.bento", tag)
    return tag


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
