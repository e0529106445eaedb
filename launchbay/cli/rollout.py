"""Wired commands: release, approve, reject, rollback, abort, history, controller, down.

On-call's commands (rollback, abort) and the release manager's (approve, reject) act on the
ledger and the target directly: they work whether or not a controller runs.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from launchbay.cli.app import (
    AsOpt,
    ConfigOpt,
    JsonOpt,
    ModelArg,
    ModelRefArg,
    ReasonOpt,
    ReleaseArg,
    app,
    err,
    out,
    whoami,
)
from launchbay.config import config_path, load_config
from launchbay.errors import LaunchbayError, PipelineFailed, UsageError
from launchbay.home import Home

if TYPE_CHECKING:
    from launchbay.checks.approvals import Decision, SignedStatement
    from launchbay.rollout.engine.release import Release
    from launchbay.rollout.wiring import Wired

TrafficOpt = Annotated[
    float,
    typer.Option(help="Send this many demo requests per second (rows of the data) through the gateway."),
]


def _wired(config: Path | None) -> Wired:
    """This project's rollout parts (ledger, target, registry), from its config."""
    from launchbay.rollout import wiring

    cfg = load_config(config)
    return wiring.rollout(cfg, Home.resolve(cfg.source).ensure())


@app.command()
def release(
    model_ref: ModelRefArg,
    config: ConfigOpt = None,
    as_: AsOpt = None,
    traffic: TrafficOpt = 0.0,
    detach: Annotated[bool, typer.Option(help="Only create it; a running controller drives it.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Roll a registered version out: verify, shadow, canary steps, approval, promotion."""
    from launchbay.registry import project_version
    from launchbay.rollout import drive, wiring

    cfg = load_config(config)
    ctx = wiring.rollout(cfg, Home.resolve(cfg.source).ensure())
    version = project_version(ctx.registry, cfg, model_ref).version
    live = err if as_json else out  # with --json, stdout carries the JSON document only
    r = drive.create(ctx, version, whoami(as_), live)
    if detach:
        _report(r, as_json, f"created {r.name}; `launchbay controller` drives it")
        return
    r = drive.drive(wiring.controller(ctx), r, live, traffic=traffic)
    if as_json:  # the live view already said where it ended
        _report(r, as_json, "")


def _tell(ctx: Wired) -> None:
    """Send the notifications this verb's decision made due (first attempts, each within the
    configured timeout); a running controller or `launchbay ui` retries what fails. Only after
    the verb has acted and said so: a receiver that is down never delays a rollback."""
    from launchbay.rollout.ledger import notify

    notifier = notify.notifier(ctx.ledger, ctx.cfg)
    if notifier is not None:
        notifier.stop(flush=ctx.cfg.notifications.timeout * len(ctx.cfg.notifications.webhooks))


def _report(r: Release, as_json: bool, message: str, **extra: Any) -> None:
    """What a write verb did: a line for people, or the release as JSON (with `extra`)."""
    if as_json:
        from launchbay.rollout import view

        doc = {k: v for k, v in view.release_dict(r, {}, None).items() if k not in {"analysis", "routes"}}
        out.print_json(json.dumps({**doc, **extra}, default=str))
    else:
        out.print(message)


KeyOpt = Annotated[
    str | None,
    typer.Option(
        "--key",
        help="Your private key (default: $LAUNCHBAY_APPROVER_KEY, else the one `launchbay keys approver "
        "NAME` made).",
        show_default=False,
    ),
]
OnBehalfOpt = Annotated[
    str | None,
    typer.Option(
        "--on-behalf-of",
        help="For CI workflow identities: the reviewer their platform checked (four eyes apply to them).",
    ),
]


def _signed(
    ctx: Wired,
    release: Release,
    decision: Decision,
    name: str,
    key: str | None,
    reason: str,
    on_behalf_of: str | None,
) -> SignedStatement:
    """The person's signed decision; a person without their key is refused (and recorded)."""
    from launchbay.rollout.engine import decisions

    return decisions.sign_as(ctx, release, decision, name, key, reason, on_behalf_of)


@app.command()
def approve(
    release_ref: ReleaseArg,
    config: ConfigOpt = None,
    as_: AsOpt = None,
    key: KeyOpt = None,
    on_behalf_of: OnBehalfOpt = None,
    reason: ReasonOpt = "",
    argo_host: Annotated[
        str | None,
        typer.Option(help="Argo server, for releases of a cluster pipeline.", envvar="ARGO_SERVER"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Promote a release waiting for approval, signed with your key (approvers only; never its author).

    A release started by an Argo workflow waits on that workflow's approval node: launchbay checks
    the rules, then supplies the signed approval and resumes the node; the workflow's promote step
    checks it again and promotes.
    """
    from launchbay.rollout.engine import decisions

    ctx = _wired(config)
    name = whoami(as_)
    waiting = decisions.pending(ctx, release_ref)
    signed = _signed(ctx, waiting, "approve", name, key, reason, on_behalf_of)
    decisions.check(ctx, waiting, signed, "approve")
    wf = decisions.argo_workflow(ctx, waiting)
    if wf is not None:
        from launchbay.pipelines.argo import resume_approval

        if not argo_host:
            raise UsageError(f"{waiting.name} waits in Argo workflow {wf['workflow']}: pass --argo-host")
        approval = json.dumps(signed.to_dict())
        resume_approval(argo_host, os.environ.get("ARGO_TOKEN"), wf["namespace"], wf["workflow"], approval)
        where = f"{wf['namespace']}/{wf['workflow']}"
        message = f"[green]approved[/]: resumed {where}; its promote step promotes {waiting.name}"
        _report(waiting, as_json, message, resumed=where, key=signed.key_id)
        return
    r = decisions.approve(ctx, signed)
    message = (
        f"[green]approved[/] (signed with key {signed.key_id}): {r.name} is promoted and serves all "
        f"traffic; champion -> v{r.version}"
    )
    _report(r, as_json, message, key=signed.key_id, approver=name)
    _tell(ctx)


@app.command()
def reject(
    release_ref: ReleaseArg,
    config: ConfigOpt = None,
    as_: AsOpt = None,
    key: KeyOpt = None,
    on_behalf_of: OnBehalfOpt = None,
    reason: ReasonOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """End a release waiting for approval, signed with your key; stable serves all traffic again."""
    from launchbay.rollout.engine import decisions

    ctx = _wired(config)
    name = whoami(as_)
    waiting = decisions.pending(ctx, release_ref)
    r = decisions.reject(ctx, _signed(ctx, waiting, "reject", name, key, reason, on_behalf_of))
    _report(r, as_json, f"[yellow]rejected[/]: {r.name}; v{r.stable_version} serves all traffic", by=name)
    _tell(ctx)


@app.command()
def audit(
    model: ModelArg,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify the model's event log: its hash chain, and every approval's signature and key."""
    from launchbay.rollout.ledger import audit as auditing

    cfg = load_config(config)
    report = auditing.audit(cfg, Home.resolve(cfg.source), model)
    if as_json:
        out.print_json(json.dumps(report.to_dict()))
    else:
        for line in report.lines():
            out.print(line, highlight=False)
    if not report.ok:
        raise PipelineFailed(f"{model}: the event log does not verify: {report.first_problem}")


@app.command()
def rollback(
    model: ModelArg,
    config: ConfigOpt = None,
    as_: AsOpt = None,
    reason: ReasonOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """On-call: take the model's newest release out of traffic now (works without a controller)."""
    from launchbay.rollout import wiring
    from launchbay.rollout.engine import operations

    cfg = load_config(config)
    if model != cfg.model.name:  # before anything is wired: a typo must not touch a cluster
        raise UsageError(f"{model}: this project's model is {cfg.model.name}")
    ctx = wiring.rollout(cfg, Home.resolve(cfg.source).ensure())
    started = time.monotonic()
    r, changed = operations.rollback(ctx, whoami(as_), reason)
    took = time.monotonic() - started
    if changed:
        message = f"[red]rolled back[/] {r.name} in {took:.1f}s; v{r.stable_version} serves all traffic"
    else:
        message = (
            f"{r.name} was already {r.phase.value}; routes checked: v{r.stable_version} serves all traffic"
        )
    _report(r, as_json, message, changed=changed, seconds=round(took, 3))
    _tell(ctx)


@app.command()
def abort(
    release_ref: ReleaseArg,
    config: ConfigOpt = None,
    as_: AsOpt = None,
    reason: ReasonOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Stop a release before promotion (works without a controller)."""
    from launchbay.rollout.engine import operations

    ctx = _wired(config)
    r, changed = operations.abort(ctx, release_ref, whoami(as_), reason)
    state = "aborted" if changed else f"was already {r.phase.value}"
    _report(r, as_json, f"{r.name} {state}; stable serves all traffic", changed=changed)
    _tell(ctx)


@app.command()
def history(
    model: ModelArg,
    config: ConfigOpt = None,
    plot: Annotated[
        Path | None,
        typer.Option(help="Also draw the release's timelines (latency, errors, traffic, shadow) to this PNG.",
                     dir_okay=False),
    ] = None,
    release_id: Annotated[
        int | None, typer.Option("--release", help="With --plot: this release (default: the newest).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The event log of a model's releases: who did what, when and why, with the evidence."""
    from launchbay.rollout import status, view

    if plot is not None:
        _plot(config, model, release_id, plot, as_json)
        return
    # On-call may run this anywhere: the project's config is used when there is one.
    cfg = load_config(config) if config_path(config).exists() else None
    events = status.history(cfg, Home.resolve(config_path(config)), model)
    if as_json:
        out.print_json(json.dumps([e.to_dict() for e in events], default=str))
        return
    if not events:
        out.print(f"{model}: no releases yet")
        return
    out.print(view.history_table(events, f"{model}: event log", out.width))


def _plot(config: Path | None, model: str, release_id: int | None, target: Path, as_json: bool) -> None:
    from launchbay.desk.plot import plot_release

    if target.suffix.lower() != ".png":
        raise UsageError(f"--plot {target}: expected a .png file name")
    page = plot_release(_wired(config), model, release_id, target)
    if as_json:
        charts = {c.key: {"source": c.source, "points": sum(len(x.points) for x in c.lines)}
                  for c in page.charts}  # fmt: skip
        out.print_json(json.dumps({"release": page.release.name, "plot": str(target), "charts": charts}))
    else:
        out.print(f"{page.release.name}: timelines drawn to {target}")


@app.command()
def controller(
    config: ConfigOpt = None,
    once: Annotated[bool, typer.Option(help="One tick for every release, then exit.")] = False,
    metrics_port: Annotated[
        int, typer.Option(help="Serve Prometheus metrics of releases on this port (0: off).")
    ] = 0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Each transition as one JSON line on stdout.")
    ] = False,
) -> None:
    """Run the reconcile loop in the foreground (for long-running setups)."""
    from launchbay.rollout import wiring
    from launchbay.rollout.engine import controller as ctl
    from launchbay.rollout.exported import ControllerMetrics

    cfg = load_config(config)
    ctx = wiring.rollout(cfg, Home.resolve(cfg.source).ensure())
    processes = ctx.target.processes()
    if processes is not None:
        _ = processes.url  # the local target: make sure clients have their address
    c = wiring.controller(ctx)
    err.print(f"controller for {cfg.model.name}: every {cfg.rollout.interval:g}s (pid {os.getpid()})")
    from launchbay.rollout.ledger import notify

    notifier = notify.notifier(ctx.ledger, cfg)
    if notifier is not None:  # its own thread: a slow receiver never delays a tick
        notifier.start()
    exported = ControllerMetrics.serve(metrics_port) if metrics_port else None

    def observe(r: Release, before: Release | None) -> None:
        if exported is not None:
            exported.observe(r, before)
        if before is None or (before.phase, before.step_index) != (r.phase, r.step_index):
            if as_json:
                line = {"at": time.time(), "release": r.name, "phase": r.phase.value, "step": r.step_index}
                print(json.dumps(line), flush=True)
            else:
                err.print(f"{time.strftime('%H:%M:%S')} {r.name}: {r.phase.value} (step {r.step_index + 1})")

    def keep_gateway_up() -> None:
        # A gateway whose supervisor died (its worker dies with it) is started again here, on its
        # port, within a tick: a long-running controller is what keeps the local target serving.
        if processes is not None:
            try:
                _ = processes.url
            except LaunchbayError as exc:
                err.print(f"{time.strftime('%H:%M:%S')} gateway: {exc.message}")

    try:
        ctl.reconcile(c, interval=cfg.rollout.interval, once=once, observe=observe, each_tick=keep_gateway_up)
    finally:
        if notifier is not None:
            notifier.stop(flush=cfg.notifications.timeout)


@app.command()
def down(
    config: ConfigOpt = None,
    prometheus: Annotated[bool, typer.Option(help="Stop the local Prometheus too.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Stop the local target's processes (gateway, model servers, Prometheus). The ledger stays."""
    from launchbay.rollout.local.prometheus import LocalPrometheus
    from launchbay.rollout.local.target import LocalTarget

    cfg = load_config(config)
    home = Home.resolve(cfg.source)
    stopped = LocalTarget(cfg, home).down()
    if prometheus and LocalPrometheus(home).stop():
        stopped.append("prometheus")
    if as_json:
        out.print_json(json.dumps({"stopped": stopped}))
    else:
        out.print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
