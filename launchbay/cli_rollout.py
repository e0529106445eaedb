"""Rollout commands: release, approve, reject, rollback, abort, history, controller, down.

On-call's commands (rollback, abort) and the release manager's (approve, reject) act on the
ledger and the target directly: they work whether or not a controller runs.
"""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import time
from typing import Annotated, Any

import typer
from rich.live import Live

from launchbay.cli import ConfigOpt, JsonOpt, app, err, out
from launchbay.config import LaunchbayConfig, load_config
from launchbay.errors import PipelineFailed, UsageError
from launchbay.home import Home
from rollout.ledger import Release
from rollout.phases import Phase

AsOpt = Annotated[
    str | None,
    typer.Option(
        "--as", help="Your name, as the approvers list spells it (default: $LAUNCHBAY_USER, git user.name)."
    ),
]
ReasonOpt = Annotated[str, typer.Option(help="Why (recorded in the event log).")]
TrafficOpt = Annotated[
    float,
    typer.Option(help="Send this many demo requests per second (rows of the data) through the gateway."),
]


def whoami(explicit: str | None) -> str:
    """The person acting: --as, $LAUNCHBAY_USER, git's user.name, or the login name."""
    if explicit:
        return explicit
    if env := os.environ.get("LAUNCHBAY_USER"):
        return env
    try:
        name = subprocess.run(
            ["git", "config", "user.name"], capture_output=True, text=True, timeout=5, check=False
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        name = ""
    return name or getpass.getuser()


def _context(cfg: LaunchbayConfig) -> Any:
    from rollout import operations

    return operations.context(cfg, Home.resolve().ensure())


def _provider(cfg: LaunchbayConfig, home: Home) -> Any:
    from rollout.metrics.prometheus import PrometheusProvider
    from rollout.metrics.server import LocalPrometheus

    url = cfg.rollout.prometheus_url or LocalPrometheus(home).ensure()
    return PrometheusProvider(url)


def drive(cfg: LaunchbayConfig, release: Release, traffic: float, data: str | None) -> Release:
    """Run the controller for one release in the foreground, with a live view, until it waits
    for a person or ends."""
    from rollout import controller as ctl
    from rollout import view
    from rollout.traffic import Traffic, sample_rows

    ctx = _context(cfg)
    url = getattr(ctx.target, "url", None) or f"the {cfg.rollout.target} target"
    controller = ctl.Controller(ctx, _provider(cfg, ctx.home))
    out.print(f"[bold]{release.name}[/]: rollout through the gateway at [cyan]{url}[/]")
    load: Traffic | None = None
    if not url.startswith("http"):
        traffic = 0  # demo traffic only goes through the local gateway
    source = data or cfg.resolve_path(cfg.data.path)
    rows = sample_rows(source, list(cfg.data.features)) if traffic > 0 else []

    def extra() -> str:
        if load is None:
            return f"gateway {url}"
        s = load.summary()
        return (
            f"gateway {url} | demo traffic: {s['requests']} requests, "
            f"answered by {s['by_version']}, failed {s['failed']}"
        )

    def waiting_or_done(r: Release) -> bool:
        return r.phase.final or r.phase in (Phase.AWAITING_APPROVAL, Phase.FAILED)

    try:
        with Live(view.live_view(release, {}), console=out, refresh_per_second=4, transient=False) as live:

            def update(r: Release) -> None:
                nonlocal load
                if rows and load is None and r.phase not in (Phase.PENDING, Phase.VERIFIED):
                    # Clients arrive once something serves (the first version has no stable yet).
                    load = Traffic(url, rows, rate=traffic).start()
                result = controller.last_result.get(r.id)
                live.update(view.live_view(r, result.evidence() if result else {}, extra()))

            release = ctl.run(
                controller, release, interval=cfg.rollout.interval, until=waiting_or_done, on_tick=update
            )
    finally:
        if load is not None:
            load.stop()
    out.print()
    _explain_end(ctx, release)
    return release


def _explain_end(ctx: Any, release: Release) -> None:
    from rollout import view

    events = ctx.ledger.history(release_id=release.id)
    last = events[-1] if events else None
    out.print(view.summary_line(release))
    if release.phase is Phase.AWAITING_APPROVAL:
        approvers: list[str] = next((s["approvers"] for s in release.plan if s["kind"] == "approval"), [])
        out.print(
            f"waiting for a release manager ({', '.join(approvers)}):\n"
            f"  launchbay approve {release.id} --as NAME    or    launchbay reject {release.id} --as NAME"
        )
    elif release.phase in (Phase.ROLLED_BACK, Phase.FAILED, Phase.ABORTED) and last is not None:
        raise PipelineFailed(f"{release.name} {release.phase.value}: {last.reason}")


def start_release(
    cfg: LaunchbayConfig, version: str, author: str, traffic: float, data: str | None, detach: bool
) -> Release:
    """Create a release of `version` and drive it (unless `detach`)."""
    ctx = _context(cfg)
    release = ctx_create(ctx, version, author)
    if detach:
        out.print(f"created {release.name}; `launchbay controller` drives it")
        return release
    return drive(cfg, release, traffic, data)


def ctx_create(ctx: Any, version: str, author: str) -> Release:
    from rollout import operations

    release: Release = operations.create(ctx, version, author)
    what = f"against stable v{release.stable_version}" if release.stable_version else "(first version)"
    out.print(f"created release [bold]{release.name}[/] by {author} {what}")
    return release


@app.command()
def release(
    model_ref: Annotated[
        str, typer.Argument(metavar="MODEL@REF", help="e.g. fraud-detector@challenger or @3")
    ],
    config: ConfigOpt = None,
    as_: AsOpt = None,
    traffic: TrafficOpt = 0.0,
    detach: Annotated[bool, typer.Option(help="Only create it; a running controller drives it.")] = False,
) -> None:
    """Roll a registered version out: verify, shadow, canary steps, approval, promotion."""
    from pipelines import tracking
    from serving import artefact

    cfg = load_config(config)
    name, ref = artefact.parse_ref(model_ref)
    if name != cfg.model.name:
        raise PipelineFailed(f"{model_ref}: this project's model is {cfg.model.name}")
    home = Home.resolve().ensure()
    tracking.preflight(cfg, home)
    client, _ = tracking.connect(cfg, home)
    version = str(artefact.resolve(client, name, ref).version)
    start_release(cfg, version, whoami(as_), traffic, None, detach)


@app.command()
def approve(
    release_ref: Annotated[str, typer.Argument(metavar="RELEASE", help="Release id (7, #7) or model name.")],
    config: ConfigOpt = None,
    as_: AsOpt = None,
    argo_host: Annotated[
        str | None,
        typer.Option(help="Argo server, for releases of a cluster pipeline.", envvar="ARGO_SERVER"),
    ] = None,
) -> None:
    """Promote a release waiting for approval (approvers only; never its author).

    A release started by an Argo workflow waits on that workflow's approval node: launchbay checks
    the rules, then supplies the approver and resumes the node; the workflow's promote step does
    the rest.
    """
    from rollout import operations

    cfg = load_config(config)
    ctx = _context(cfg)
    name = whoami(as_)
    release = operations.may_approve(ctx, release_ref, name)
    wf = operations.argo_workflow(ctx, release)
    if wf is not None:
        from pipelines.argo import resume_approval

        if not argo_host:
            raise UsageError(f"{release.name} waits in Argo workflow {wf['workflow']}: pass --argo-host")
        resume_approval(argo_host, os.environ.get("ARGO_TOKEN"), wf["namespace"], wf["workflow"], name)
        where = f"{wf['namespace']}/{wf['workflow']}"
        out.print(f"[green]approved[/]: resumed {where}; its promote step promotes {release.name}")
        return
    r = operations.approve(ctx, str(release.id), name)
    out.print(f"[green]approved[/]: {r.name} is promoted and serves all traffic; champion -> v{r.version}")


@app.command()
def reject(
    release_ref: Annotated[str, typer.Argument(metavar="RELEASE", help="Release id (7, #7) or model name.")],
    config: ConfigOpt = None,
    as_: AsOpt = None,
    reason: ReasonOpt = "",
) -> None:
    """End a release waiting for approval; stable serves all traffic again."""
    from rollout import operations

    cfg = load_config(config)
    r = operations.reject(_context(cfg), release_ref, whoami(as_), reason)
    out.print(f"[yellow]rejected[/]: {r.name}; v{r.stable_version} serves all traffic")


@app.command()
def rollback(
    model: Annotated[str, typer.Argument(help="Model name.")],
    config: ConfigOpt = None,
    as_: AsOpt = None,
    reason: ReasonOpt = "",
) -> None:
    """On-call: take the model's newest release out of traffic now (works without a controller)."""
    from rollout import operations

    cfg = load_config(config)
    if model != cfg.model.name:
        raise PipelineFailed(f"{model}: this project's model is {cfg.model.name}")
    started = time.monotonic()
    r, changed = operations.rollback(_context(cfg), whoami(as_), reason)
    took = time.monotonic() - started
    if changed:
        out.print(f"[red]rolled back[/] {r.name} in {took:.1f}s; v{r.stable_version} serves all traffic")
    else:
        out.print(
            f"{r.name} was already {r.phase.value}; routes checked: v{r.stable_version} serves all traffic"
        )


@app.command()
def abort(
    release_ref: Annotated[str, typer.Argument(metavar="RELEASE", help="Release id (7, #7) or model name.")],
    config: ConfigOpt = None,
    as_: AsOpt = None,
    reason: ReasonOpt = "",
) -> None:
    """Stop a release before promotion (works without a controller)."""
    from rollout import operations

    cfg = load_config(config)
    r, changed = operations.abort(_context(cfg), release_ref, whoami(as_), reason)
    state = "aborted" if changed else f"was already {r.phase.value}"
    out.print(f"{r.name} {state}; stable serves all traffic")


@app.command()
def history(
    model: Annotated[str, typer.Argument(help="Model name.")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The event log of a model's releases: who did what, when and why, with the evidence."""
    from launchbay.config import config_path
    from rollout import view
    from rollout.ledger import Ledger

    # On-call may run this anywhere: the project's config is used when there is one.
    url = load_config(config).rollout.ledger_url if config_path(config).exists() else None
    events = Ledger.for_home(Home.resolve(), url).history(model=model)
    if as_json:
        out.print_json(json.dumps([e.to_dict() for e in events], default=str))
        return
    if not events:
        out.print(f"{model}: no releases yet")
        return
    out.print(view.history_table(events, f"{model}: event log"))


@app.command()
def controller(
    config: ConfigOpt = None,
    once: Annotated[bool, typer.Option(help="One tick for every release, then exit.")] = False,
    metrics_port: Annotated[
        int, typer.Option(help="Serve Prometheus metrics of releases on this port (0: off).")
    ] = 0,
) -> None:
    """Run the reconcile loop in the foreground (for long-running setups)."""
    from rollout import controller as ctl
    from rollout.metrics.exported import ControllerMetrics

    cfg = load_config(config)
    ctx = _context(cfg)
    if hasattr(ctx.target, "gateway"):
        ctx.target.gateway()  # the local target: make sure clients have their address
    c = ctl.Controller(ctx, _provider(cfg, ctx.home))
    err.print(f"controller for {cfg.model.name}: every {cfg.rollout.interval:g}s (pid {os.getpid()})")
    seen: dict[int, tuple[str, int]] = {}
    exported = ControllerMetrics.serve(metrics_port) if metrics_port else None
    while True:
        started = time.monotonic()
        for r in c.tick_all():
            key = (r.phase.value, r.step_index)
            if exported is not None:
                exported.observe(r, seen.get(r.id, ("", 0))[0])
            if seen.get(r.id) != key:
                seen[r.id] = key
                err.print(f"{time.strftime('%H:%M:%S')} {r.name}: {r.phase.value} (step {r.step_index + 1})")
        if once:
            return
        time.sleep(max(0.0, cfg.rollout.interval - (time.monotonic() - started)))


@app.command()
def down(
    config: ConfigOpt = None,
    prometheus: Annotated[bool, typer.Option(help="Stop the local Prometheus too.")] = True,
) -> None:
    """Stop the local target's processes (gateway, model servers, Prometheus). The ledger stays."""
    from rollout.metrics.server import LocalPrometheus
    from rollout.targets.local import LocalTarget

    cfg = load_config(config)
    home = Home.resolve()
    stopped = LocalTarget(cfg, home).down()
    if prometheus and LocalPrometheus(home).stop():
        stopped.append("prometheus")
    out.print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


def releases_json(cfg: LaunchbayConfig, home: Home, limit: int = 10) -> list[dict[str, Any]]:
    """Live and recent releases with their evidence (for `status`)."""
    from rollout import operations, view
    from rollout.ledger import Ledger

    if (
        not (cfg.rollout.ledger_url or os.environ.get("LAUNCHBAY_LEDGER_URL"))
        and not (home.root / "ledger.db").exists()
    ):
        return []
    ledger = Ledger.for_home(home, cfg.rollout.ledger_url)
    routes = _routes_if_running(cfg, home)
    return [
        view.release_dict(r, operations.last_analysis(ledger, r), routes if r.phase.live else None)
        for r in ledger.releases(cfg.model.name)[:limit]
    ]


def _routes_if_running(cfg: LaunchbayConfig, home: Home) -> dict[str, Any] | None:
    """The gateway's routes if it runs (status never starts anything)."""
    from rollout import procs
    from rollout.targets.local import LocalTarget

    target = LocalTarget(cfg, home)
    rec = procs.ProcessRecord.read(target.gateway_file)
    if rec is None or not procs.alive(rec.pid):
        return None
    try:
        return target.routes().to_dict()
    except Exception:
        return None

