"""Project commands: init (scaffold a model repository), schema (of launchbay.yaml), check (config)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Literal

import typer

import launchbay
from launchbay.cli.app import ConfigOpt, JsonOpt, app, out
from launchbay.config import load_config
from launchbay.config.base import valid_name
from launchbay.errors import UsageError

TaskOpt = Literal["binary", "multiclass", "regression"]


def _shared(path: Path) -> Path:
    """`path`, its missing directories made readable by others (0755: a repository's folders;
    the CLI's umask keeps launchbay's own state private)."""
    missing = [d for d in reversed(path.parents) if not d.exists()]
    for d in missing:
        d.mkdir()
        d.chmod(0o755)
    return path


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="The model repository (created if missing).")] = Path(),
    data: Annotated[
        Path | None, typer.Option(help="A CSV/Parquet sample of your data (features are inferred from it).")
    ] = None,
    target: Annotated[str, typer.Option(help="The column the model predicts.")] = "label",
    task: Annotated[
        TaskOpt | None, typer.Option(help="binary | multiclass | regression (default: from the target).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Model name (default: the directory's name).")] = None,
    approver: Annotated[
        list[str] | None, typer.Option(help="A release manager who may approve (repeat for more).")
    ] = None,
    package: Annotated[
        str | None, typer.Option(help="What the GitHub workflows pip-install (default: this version).")
    ] = None,
    rps: Annotated[
        float,
        typer.Option(
            min=0.01,
            help="Requests per second the model gets: the rollout's steps, windows and min_samples "
            "are sized so that every analysis can decide at it (default 1: slow but never stuck).",
        ),
    ] = 1.0,
    force: Annotated[bool, typer.Option(help="Overwrite files that exist.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Scaffold a model repository: config, training module, workflows.

    Writes launchbay.yaml (every section, commented; features inferred from --data), a training
    module with the contract in its docstring, .gitignore, launchbay.schema.json for editors, and
    the GitHub workflows (pipeline, promote, rollback) that call the installed launchbay.
    """
    from launchbay.pipelines import scaffold

    root = directory.resolve()
    model = name or scaffold.model_name(root)
    if not valid_name(model):
        raise UsageError(f"--name {model!r}: expected lower-case letters, digits and '-' (e.g. churn-model)")
    inferred = None
    data_ref = "data/train.csv"
    reference_ref: str | None = None
    frame = None
    if data is not None:
        from launchbay.checks.data_gate import read_frame

        source = data.resolve()
        if not source.is_file():
            raise UsageError(f"--data {data}: no such file")
        try:
            frame = read_frame(str(source))
        except Exception as exc:  # any reader error is the user's file, named as such
            raise UsageError(f"--data {data}: cannot be read as CSV or Parquet: {exc}") from None
        inferred = scaffold.infer(frame, target, task)
        data_ref = os.path.relpath(source, root) if source.is_relative_to(root) else str(source)
        # Drift is checked against the data as it is today: a sample of it beside the config.
        reference_ref = str(Path("data") / f"reference{source.suffix.lower() or '.csv'}")
    chosen = task or (inferred.task if inferred else "binary")
    written = scaffold.files(
        root,
        name=model,
        task=chosen,
        data=data_ref,
        target=target,
        inferred=inferred,
        approvers=approver or [],
        package=package or f"launchbay=={launchbay.installed_version()}",
        rps=rps,
        reference=reference_ref,
    )
    to_write = [*written, *([Path(reference_ref)] if reference_ref is not None else [])]
    existing = [str(p) for p in to_write if (root / p).exists()]
    if existing and not force:
        raise UsageError(f"{root}: would overwrite {', '.join(existing)} (use --force to replace them)")
    for rel, text in written.items():
        path = _shared(root / rel)
        path.write_text(text)
        path.chmod(0o644)  # project files, to commit and share (launchbay's own state stays private)
    if reference_ref is not None and frame is not None:
        path = _shared(root / reference_ref)
        sample = scaffold.reference_sample(frame)
        if path.suffix == ".parquet":
            sample.to_parquet(path, index=False)
        else:
            sample.to_csv(path, index=False)
        path.chmod(0o644)
        written = {**written, Path(reference_ref): ""}
    if approver:
        (root / "approvers").mkdir(exist_ok=True)
    summary = {
        "directory": str(root),
        "model": model,
        "task": chosen,
        "data": data_ref,
        "features": list(inferred.features) if inferred else [],
        "left_out": inferred.left_out if inferred else {},
        "id_column": inferred.id_column if inferred else None,
        "reference": reference_ref,
        "files": [str(p) for p in written],
    }
    if as_json:
        out.print_json(json.dumps(summary))
        return
    out.print(f"[bold]{model}[/] ({chosen}) in {root}")
    for p in written:
        out.print(f"  wrote {p}")
    if inferred:
        out.print(f"  {len(inferred.features)} feature(s) from {data_ref}: {', '.join(inferred.features)}")
        for column, why in inferred.left_out.items():
            out.print(f"  left out {column}: {why}")
    out.print("next:")
    if not inferred:
        out.print(f"  put your data at {data_ref} and list its columns under data.features")
    for a in approver or []:
        out.print(f"  {a}: launchbay keys approver {a} --public-key approvers/{a}.pub")
    out.print("  launchbay keys init && launchbay check && launchbay run")


@app.command()
def schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write it here instead of stdout.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Report the file written as JSON.")] = False,
) -> None:
    """Print the JSON Schema of launchbay.yaml (what editors validate the file with)."""
    from launchbay.pipelines.scaffold import schema_text

    text = schema_text()
    if output is None:
        out.print(text, end="", markup=False, highlight=False, soft_wrap=True)
        return
    output.write_text(text)
    if as_json:
        out.print_json(json.dumps({"wrote": str(output)}))
    else:
        out.print(f"wrote {output}")


@app.command()
def check(
    config: ConfigOpt = None,
    data: Annotated[Path | None, typer.Option(help="Check this data file instead of data.path.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the project without running anything.

    Every key of the config, that model.train imports and takes (features, target, params), the
    shipped code (model.code), and that the data file exists.
    """
    from launchbay.pipelines.preflight import require_project

    cfg = load_config(config)
    require_project(cfg, str(data.resolve()) if data else None)
    warnings = cfg.rollout.unreachable()
    doc = {"config": str(cfg.source), "model": cfg.model.name, "task": cfg.model.task, "ok": True,
           "warnings": warnings, "expected_rps": cfg.rollout.expected_rps}  # fmt: skip
    if as_json:
        out.print_json(json.dumps(doc))
        return
    out.print(f"{cfg.source}: ok ({cfg.model.name}, {cfg.model.task}, train {cfg.model.train})")
    for w in warnings:
        out.print(f"[yellow]warning[/]: rollout at expected_rps {cfg.rollout.expected_rps:g}: {w}")


_MARK = {"ok": "[green]ok[/]  ", "warn": "[yellow]warn[/]", "fail": "[red]fail[/]", "skip": "[dim]skip[/]"}


@app.command()
def doctor(
    config: ConfigOpt = None,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds each network check may take.")] = 3.0,
    as_json: JsonOpt = False,
) -> None:
    """Check what commands will need on this machine, and say how to fix each problem.

    Python and packages, the `prometheus` binary, the gateway's port, signing keys and their
    permissions, MLflow and the ledger, and Argo/Kubernetes/Prometheus when configured.
    Exits 3 when something would make a command fail; warnings exit 0.
    """
    from launchbay.config import config_path
    from launchbay.doctor import Finding, examine
    from launchbay.errors import ConfigError, EnvironmentProblem
    from launchbay.home import Home

    file = config_path(config)
    cfg, home, notes = None, None, []
    if file.exists():
        cfg = load_config(file)  # a config that does not load is a usage mistake (exit 2) as anywhere
        home = Home.resolve(cfg.source)
    elif config is not None:
        raise ConfigError(f"{file}: config file not found")
    else:
        notes.append(Finding("project", "skip", f"no {file.name} here: the project's checks are skipped",
                             "run it in a model repository, or pass --config"))  # fmt: skip
    findings = notes + examine(cfg, home, timeout=timeout)
    failed = [f for f in findings if f.status == "fail"]
    if as_json:
        out.print_json(json.dumps({"ok": not failed, "config": str(cfg.source) if cfg else None,
                                   "checks": [f.to_dict() for f in findings]}))  # fmt: skip
    else:
        for f in findings:
            out.print(f"{_MARK[f.status]} {f.check}: {f.detail}", highlight=False)
            if f.fix and f.status in ("fail", "warn"):
                out.print(f"       fix: {f.fix}", highlight=False, markup=False)
    if failed:
        if not as_json:
            out.print(f"{len(failed)} problem(s): " + ", ".join(f.check for f in failed), highlight=False)
        raise typer.Exit(EnvironmentProblem.exit_code)
