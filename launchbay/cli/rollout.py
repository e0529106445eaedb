"""Rollout commands: release, approve, reject, rollback, abort, history, controller, down.

Every command that decides (release, approve, reject, rollback, abort) records its decision in the
ledger, then has the world follow it -- the reconciler pass runs in the command itself, so it
works whether or not a controller runs, and the local controller is started if it is not -- and
says what the world now is. A decision whose effect could not be made true yet is exit 3, naming
what is wrong; one undone meanwhile by somebody else is exit 4, naming who.
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
from launchbay.errors import EnvironmentProblem, PipelineFailed, Refused, UsageError
from launchbay.home import Home

if TYPE_CHECKING:
    from launchbay.checks.approvals import Decision, SignedStatement
    from launchbay.rollout.engine.phases import Phase
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
        who = "the controller" if cfg.rollout.target == "local" else "the cluster's controller"
        _report(r, as_json, f"created {r.name}; {who} drives it (`launchbay status` to follow it)")
        return
    cluster = wiring.controller(ctx) if cfg.rollout.target != "local" else None
    r = drive.drive(ctx, r, live, controller=cluster, traffic=traffic)
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


def _followed(ctx: Wired, decided: Release, what: str, intended: Phase | None = None) -> tuple[Release, str]:
    """The world made to follow a decision just recorded; the release as it now is, and the world
    in words. `intended`: the phase the decision put it in (default: the one it has now).

    Raises:
        Refused: somebody else moved the release meanwhile (their decision stands; exit 4).
        EnvironmentProblem: the decision is on record but the world could not follow yet.
    """
    from launchbay.rollout import daemon, view

    world = daemon.follow(ctx)
    now = ctx.ledger.get(decided.id)
    if now.phase is not (intended or decided.phase):
        events = ctx.ledger.history(release_id=now.id)
        mover = view.moved_in(now, events)
        by = f" by {mover.actor}" if mover is not None else ""
        raise Refused(
            f"{decided.name} was {what}, then {now.phase.value}{by} meanwhile: {world.desired.describe()}"
        )
    if not world.ok:
        raise EnvironmentProblem(
            f"{now.name} is {now.phase.value} in the ledger, but the world does not follow yet: "
            + "; ".join(world.problems)
            + " (the controller keeps trying; `launchbay status` shows it)"
        )
    return now, world.desired.describe()


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
    from launchbay.rollout.engine import decisions, phases

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
    r, world = _followed(ctx, r, f"approved by {name}", phases.Phase.PROMOTED)
    message = (
        f"[green]approved[/] (signed with key {signed.key_id}): {r.name} is promoted; {world}; "
        f"champion -> v{r.version}"
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
    from launchbay.rollout.engine import decisions, phases

    ctx = _wired(config)
    name = whoami(as_)
    waiting = decisions.pending(ctx, release_ref)
    r = decisions.reject(ctx, _signed(ctx, waiting, "reject", name, key, reason, on_behalf_of))
    r, world = _followed(ctx, r, f"rejected by {name}", phases.Phase.ABORTED)
    _report(r, as_json, f"[yellow]rejected[/]: {r.name}; {world}", by=name)
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
    r, world = _followed(ctx, r, "rolled back")
    took = time.monotonic() - started
    if changed:
        message = f"[red]rolled back[/] {r.name} in {took:.1f}s; {world}"
    else:
        message = f"{r.name} was already {r.phase.value}; the world checked: {world}"
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
    r, world = _followed(ctx, r, "aborted")
    state = "aborted" if changed else f"was already {r.phase.value}"
    _report(r, as_json, f"{r.name} {state}; {world}", changed=changed)
    _tell(ctx)


@app.command()
def history(
    model: ModelArg,
    config: ConfigOpt = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="Also draw the release's timelines (latency, errors, traffic, shadow) to this PNG.",
            dir_okay=False,
        ),
    ] = None,
    release_id: Annotated[
        int | None,
        typer.Option(
            "--release", help="Only this release's events (with --plot: its timelines; default: the newest)."
        ),
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
    if release_id is not None:
        events = [e for e in events if e.release_id == release_id]
        if not events:
            raise UsageError(f"{model} has no release #{release_id} (`launchbay history {model}` lists them)")
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
    once: Annotated[bool, typer.Option(help="One round for every release, then exit.")] = False,
    background: Annotated[
        bool, typer.Option(help="Run detached (what commands start); quietly done if one runs already.")
    ] = False,
    standby: Annotated[
        bool, typer.Option(help="If one runs already, wait and take over when it ends (for systemd).")
    ] = False,
    stop: Annotated[bool, typer.Option("--stop", help="Stop the model's running controller.")] = False,
    metrics_port: Annotated[
        int, typer.Option(help="Serve Prometheus metrics of releases on this port (0: off).")
    ] = 0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Each transition as one JSON line on stdout.")
    ] = False,
) -> None:
    """The controller: decides every release and keeps the world as the ledger says (always on
    for the local target -- any command starts it when it is gone; `launchbay service install`
    starts it at boot)."""
    import logging

    from launchbay.rollout import daemon, wiring
    from launchbay.rollout.exported import ControllerMetrics

    cfg = load_config(config)
    home = Home.resolve(cfg.source).ensure()
    if stop:
        pid = daemon.stop(home, cfg.model.name)
        if as_json:
            out.print_json(json.dumps({"stopped": pid}))
        else:
            out.print(f"stopped the controller (pid {pid})" if pid else "no controller was running")
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per probe would bury what matters
    ctx = wiring.rollout(cfg, home)
    c = wiring.controller(ctx)
    if not background:
        err.print(f"controller for {cfg.model.name}: every {cfg.rollout.interval:g}s (pid {os.getpid()})")
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

    daemon.serve(c, home, once=once, background=background, standby=standby, observe=observe)


@app.command()
def down(
    config: ConfigOpt = None,
    prometheus: Annotated[bool, typer.Option(help="Stop the local Prometheus too.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Stop the local target's processes (gateway, model servers, Prometheus) and the warm steps'
    server. The ledger stays."""
    from launchbay.pipelines import warm
    from launchbay.rollout import daemon
    from launchbay.rollout.local.prometheus import LocalPrometheus
    from launchbay.rollout.local.target import LocalTarget

    cfg = load_config(config)
    home = Home.resolve(cfg.source)
    # The controller first: it keeps the gateway up and would start what is being stopped.
    pid = daemon.stop(home, cfg.model.name, on_purpose=True)
    stopped = [f"controller (pid {pid})"] if pid else []
    stopped += LocalTarget(cfg, home).down()
    stopped += [f"step server (pid {pid})" for pid in warm.stop_servers(home.root / "steps")]
    if prometheus and LocalPrometheus(home).stop():
        stopped.append("prometheus")
    if as_json:
        out.print_json(json.dumps({"stopped": stopped}))
    else:
        out.print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


service_app = typer.Typer(help="Run the model's controller as a system service (survives reboots).",
                          no_args_is_help=True)  # fmt: skip
app.add_typer(service_app, name="service")


@service_app.command("install")
def service_install(
    config: ConfigOpt = None,
    system: Annotated[
        bool, typer.Option(help="A system unit in /etc/systemd/system (default: this user's units).")
    ] = False,
    path: Annotated[
        Path | None, typer.Option("--path", help="Write the unit here instead (to install it yourself).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a systemd unit that starts the controller at boot and restarts it if it dies
    (checked with `systemd-analyze verify` where systemd is installed)."""
    import shutil
    import subprocess

    from launchbay.files import write_private
    from launchbay.rollout import daemon

    cfg = load_config(config)
    if cfg.rollout.target != "local":
        raise UsageError(
            f"rollout.target is {cfg.rollout.target}: the controller runs in the cluster (`launchbay render`)"
        )
    home = Home.resolve(cfg.source).ensure()
    name = daemon.unit_name(cfg.model.name)
    if path is None:
        base = Path("/etc/systemd/system") if system else Path.home() / ".config" / "systemd" / "user"
        path = base / name
    env_file = daemon.directory(home, cfg.model.name) / "service.env"
    env = daemon.service_env(cfg, home)
    write_private(env_file, "".join(f"{k}={json.dumps(v)}\n" for k, v in env.items()))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(daemon.unit_text(cfg, env_file, home))
    except OSError as exc:
        raise UsageError(f"{path}: cannot write the unit: {exc.strerror}") from None
    checked = "systemd-analyze is not installed here: not checked"
    if (analyze := shutil.which("systemd-analyze")) is not None:
        res = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True, timeout=60)
        problems = [ln for ln in (res.stdout + res.stderr).splitlines() if str(path) in ln or "bad" in ln]
        if res.returncode != 0:
            raise EnvironmentProblem(f"{path}: systemd-analyze verify refused it:\n" + "\n".join(problems))
        checked = "systemd-analyze verify: no problem"
    scope = "" if system else " --user"
    enable = f"systemctl{scope} daemon-reload && systemctl{scope} enable --now {path.name}"
    if as_json:
        out.print_json(json.dumps({"unit": str(path), "env_file": str(env_file), "checked": checked,
                                   "enable": enable, "variables": sorted(env)}))  # fmt: skip
        return
    out.print(f"wrote {path} ({checked}); its environment: {env_file} (0600: {', '.join(sorted(env))})")
    out.print(f"start it at boot:\n  {enable}")
