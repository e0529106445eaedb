"""The `launchbay` command line. Commands are thin: they parse options and call the packages.

Every `LaunchbayError` becomes one red message on stderr and its exit code (see
`launchbay.errors`); no command prints a traceback for a mistake the user can fix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from launchbay.config import LaunchbayConfig, load_config
from launchbay.errors import LaunchbayError, PipelineFailed, UsageError
from launchbay.home import HOME_ENV, Home
from rollout.phases import Phase

app = typer.Typer(
    name="launchbay",
    help="MLOps CI/CD with progressive delivery: gated training, signed models, safe rollouts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console()
err = Console(stderr=True, soft_wrap=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Pipeline config file.",
        envvar="LAUNCHBAY_CONFIG",
        show_default="launchbay.yaml",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _git_commit(directory: Path) -> str:
    """The commit checked out where the config lives, or "" outside a git work tree."""
    try:
        res = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return res.stdout.strip() if res.returncode == 0 else ""


def _data_path(cfg: LaunchbayConfig, data: Path | None) -> str:
    # --data is relative to where the user is; the config's path is relative to the config file.
    return str(data.resolve()) if data else cfg.resolve_path(cfg.data.path)


@app.command()
def run(
    config: ConfigOpt = None,
    data: Annotated[
        Path | None, typer.Option(help="Train on this CSV/Parquet file instead of data.path.")
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help="Stop after this step: validate-data, train, evaluate, register, sign, package."),
    ] = None,
    rollout: Annotated[
        bool, typer.Option(help="Continue into the rollout: shadow, canary steps, approval.")
    ] = True,
    traffic: Annotated[
        float, typer.Option(help="Demo requests per second sent through the gateway during the rollout.")
    ] = 0.0,
    as_: Annotated[
        str | None,
        typer.Option("--as", help="Author of the release (default: $LAUNCHBAY_USER, git user.name)."),
    ] = None,
) -> None:
    """Run the pipeline on this machine, then roll the new version out.

    Checks the data, trains, gates against the champion, registers, signs and packages; then
    deploys the new version behind the gateway: shadow, canary steps, approval, promotion.
    """
    from launchbay.progress import PipelineView, summary
    from pipelines import tracking
    from pipelines.executor import LocalExecutor
    from pipelines.training import build_workflow
    from pipelines.training import stages as pipeline_stages

    cfg = load_config(config)
    all_steps = pipeline_stages(cfg)
    if until is not None and until not in all_steps:
        raise UsageError(f"--until {until!r}: expected one of {', '.join(all_steps)}")
    home = Home.resolve().ensure()
    uri = tracking.preflight(cfg, home)
    data_path = _data_path(cfg, data)
    assert cfg.source is not None
    workflow = build_workflow(
        cfg, config=str(cfg.source), data=data_path, git_commit=_git_commit(cfg.base_dir)
    )
    # Steps import the user's training module: make the config's directory and ours importable.
    pythonpath = os.pathsep.join(
        p for p in (str(cfg.base_dir), str(Path.cwd()), os.environ.get("PYTHONPATH", "")) if p
    )
    stages = list(all_steps[: all_steps.index(until) + 1] if until else all_steps)
    out.print(f"[bold]{cfg.model.name}[/]: data [cyan]{data_path}[/], tracking [cyan]{uri}[/]")
    view = PipelineView(out, stages)
    executor = LocalExecutor(
        home.workflows, env={HOME_ENV: str(home.root), "PYTHONPATH": pythonpath}, on_change=view.update
    )
    with view:
        result = executor.run(workflow, until=until)
    out.print(summary(result, list(all_steps)))
    if not result.succeeded:
        failed = result.failed
        raise PipelineFailed(f"pipeline stopped at step {failed.name if failed else '?'}")
    reg = result.tasks.get("register")
    if reg is not None:
        version, aliases = reg.outputs.get("model-version"), reg.outputs.get("aliases", "").split(",")
        out.print(f"[green]Registered[/] {cfg.model.name} version {version} as [bold]{', '.join(aliases)}[/]")
        if "champion" in aliases:
            out.print(f"[yellow]No champion existed: version {version} is now the champion (bootstrap).[/]")
        if rollout and until is None and version:
            from launchbay.cli_rollout import start_release, whoami

            if cfg.rollout.target != "local":
                out.print(f"rollout.target is {cfg.rollout.target}: use `launchbay submit` for a cluster")
                return
            start_release(cfg, str(version), whoami(as_), traffic, data_path, detach=False)


@app.command()
def render(
    config: ConfigOpt = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write here instead of stdout.")
    ] = None,
    git_commit: Annotated[
        str | None, typer.Option(help="Commit to record (default: the checked-out one).")
    ] = None,
    target: Annotated[
        str,
        typer.Option(
            help="argo (the pipeline's Workflow), argo-template (WorkflowTemplate + CronWorkflow), "
            "or kubernetes|knative (a release's manifests)."
        ),
    ] = "argo",
    version: Annotated[str | None, typer.Option(help="kubernetes/knative: the version to release.")] = None,
    stable: Annotated[
        str | None, typer.Option(help="kubernetes/knative: the version serving now (renders a canary).")
    ] = None,
    weight: Annotated[int, typer.Option(min=0, max=100, help="Canary weight with --stable.")] = 0,
    schedule: Annotated[
        str, typer.Option(help="argo-template: when the CronWorkflow retrains (cron syntax).")
    ] = "0 3 * * 1",
) -> None:
    """Write YAML: the Argo Workflow of the pipeline, or the objects a cluster target applies.

    Everything is validated first: the Workflow against Argo's schema, core kinds with
    kubernetes-validate, HTTPRoute and Knative Service against their CRDs.
    """
    from pipelines.argo import for_argo, to_yaml

    cfg = load_config(config)
    if target in ("kubernetes", "knative"):
        from rollout.targets.manifests import release_objects
        from rollout.targets.validate import InvalidObject, check

        if version is None:
            raise UsageError(f"--target {target} needs --version N (the version to release)")
        objects = release_objects(cfg, target, version, stable, weight)
        try:
            check(objects)
        except InvalidObject as exc:
            raise PipelineFailed(str(exc)) from None
        text = "---\n".join(to_yaml(o) for o in objects)
    elif target in ("argo", "argo-template"):
        from pipelines.argo import template_and_cron

        commit = git_commit if git_commit is not None else _git_commit(cfg.base_dir)
        if target == "argo":
            text = to_yaml(for_argo(cfg, commit).to_dict())
        else:
            text = "---\n".join(to_yaml(o) for o in template_and_cron(cfg, commit, schedule))
    else:
        raise UsageError(f"--target {target!r}: expected argo, argo-template, kubernetes or knative")
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        err.print(f"wrote {output}")


@app.command()
def submit(
    host: Annotated[
        str, typer.Option(help="Argo server URL, e.g. https://argo.example.com:2746.", envvar="ARGO_SERVER")
    ],
    namespace: Annotated[str | None, typer.Option(help="Namespace (default: argo.namespace).")] = None,
    config: ConfigOpt = None,
    token: Annotated[
        str | None, typer.Option(help="Bearer token.", envvar="ARGO_TOKEN", show_default=False)
    ] = None,
) -> None:
    """Submit the pipeline to an Argo Workflows server."""
    from pipelines.argo import for_argo
    from pipelines.argo import submit as argo_submit

    cfg = load_config(config)
    ns = namespace or cfg.argo.namespace
    name = argo_submit(for_argo(cfg, _git_commit(cfg.base_dir)), host, ns, token)
    out.print(f"submitted workflow [bold]{name}[/] to {host} (namespace {ns})")


@app.command()
def status(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Show the model's registry state: champion and challenger with their key metrics."""
    from launchbay.cli_rollout import releases_json
    from pipelines import tracking

    cfg = load_config(config)
    home = Home.resolve()
    tracking.preflight(cfg, home)
    client, _ = tracking.connect(cfg, home)
    state = tracking.registry_state(client, cfg.model.name)
    state["releases"] = releases_json(cfg, home)
    if as_json:
        out.print_json(json.dumps(state, default=str))
        return
    if not state["registered"]:
        out.print(f"{cfg.model.name}: no model registered yet (run `launchbay run`)")
        return
    table = Table(title=f"{cfg.model.name} ({state['versions']} version(s))")
    for col in ("alias", "version", "ROC AUC", "precision", "recall", "registered", "git commit"):
        table.add_column(col)
    for alias, v in state["aliases"].items():
        m = v["metrics"]
        created = (
            datetime.fromtimestamp(v["created"] / 1000, UTC).strftime("%Y-%m-%d %H:%M")
            if v["created"]
            else ""
        )
        table.add_row(
            alias,
            str(v["version"]),
            _num(m.get("roc_auc")),
            _num(m.get("precision")),
            _num(m.get("recall")),
            created,
            (v["git_commit"] or "")[:10],
        )
    out.print(table)
    if state["releases"]:
        from rollout import view

        out.print(view.releases_table(state["releases"]))
        live = [r for r in state["releases"] if Phase(r["phase"]).live]
        for r in live:
            out.print(view.evidence_table(r["analysis"], title=f"{r['name']}: latest analysis"))


keys_app = typer.Typer(help="Signing keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("init")
def keys_init(
    force: Annotated[
        bool, typer.Option(help="Replace existing keys (old signatures stop verifying).")
    ] = False,
) -> None:
    """Create a signing key pair under the state directory (private key readable by you only)."""
    from checks.signature import generate_keypair
    from launchbay.keys import keys_dir

    directory = keys_dir(Home.resolve().ensure())
    try:
        private, public = generate_keypair(directory, force=force)
    except FileExistsError:
        out.print(f"keys already exist in {directory} (use --force to replace them)")
        return
    out.print(f"private key: {private} (mode 600, never commit it)\npublic key:  {public}")


@app.command()
def verify(
    model_ref: Annotated[str, typer.Argument(metavar="MODEL@REF", help="e.g. fraud-detector@champion or @3")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify a registered model's signature and provenance against the trusted keys."""
    from serving import deploy

    cfg = load_config(config)
    report = deploy.verify_registered(cfg, Home.resolve(), model_ref)
    if as_json:
        out.print_json(json.dumps(report, default=str))
    else:
        colour = "green" if report["verdict"] == "PASS" else "red"
        out.print(
            f"{model_ref} (version {report['version']}): [{colour}]{report['verdict']}[/] {report['message']}"
        )
        for key, value in report.get("provenance", {}).items():
            out.print(f"  {key}: {value}")
    if report["verdict"] != "PASS":
        raise PipelineFailed(f"{model_ref}: signature check {report['verdict']}: {report['message']}")


@app.command()
def serve(
    model_ref: Annotated[str, typer.Argument(metavar="MODEL@REF", help="e.g. fraud-detector@champion")],
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 3000,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    config: ConfigOpt = None,
) -> None:
    """Verify a registered model, then serve it over HTTP (BentoML) in the foreground."""
    from serving import deploy

    cfg = load_config(config)
    argv, env = deploy.prepare_serve(cfg, Home.resolve().ensure(), model_ref, host, port)
    err.print(f"serving {model_ref} on http://{host}:{port} (signature verified)")
    sys.stdout.flush()
    os.execve(argv[0], argv, env)  # become the server: signals and the PID are BentoML's


@app.command("example-data")
def example_data(
    output: Annotated[Path, typer.Option("-o", "--output", help="File to write (.parquet or .csv).")],
    variant: Annotated[str, typer.Option(help="good, drifted or broken.")] = "good",
    rows: Annotated[int, typer.Option(min=1, help="Number of transactions.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data).")] = 1,
) -> None:
    """Write the example fraud-transaction data set (or a drifted or broken variant of it)."""
    from pipelines.example import fraud

    if variant not in fraud.VARIANTS:
        raise UsageError(f"--variant {variant!r}: expected one of {', '.join(fraud.VARIANTS)}")
    if output.suffix.lower() not in {".parquet", ".pq", ".csv"}:
        raise UsageError(f"--output {output}: expected a .parquet or .csv file name")
    frame = fraud.generate(rows, variant, seed)
    fraud.write(frame, output)
    out.print(f"wrote {len(frame)} {variant} transactions to {output}")


def _num(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, (int, float)) else "-"


# The rollout commands register themselves on `app` (kept apart to keep modules small).
from launchbay import cli_advise, cli_rollout  # noqa: E402,F401


def main() -> None:
    """Console-script entry point: run the app, turning launchbay errors into exit codes."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        code = app(standalone_mode=False)
    except LaunchbayError as exc:
        err.print(f"[red]error:[/] {exc.message}", highlight=False)
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        err.print("aborted")
        raise SystemExit(130) from None
    except KeyboardInterrupt:
        err.print("interrupted")
        raise SystemExit(130) from None
    except Exception as exc:
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            raise SystemExit(exc.exit_code) from None
        raise
    if isinstance(code, int) and code:
        raise SystemExit(code)
