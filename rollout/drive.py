"""A release in the foreground: `launchbay run` and `launchbay release` without --detach.

On the local target the always-on controller drives the release (this command started it if it
was not running); the command follows it from the ledger and the controller's record -- the
phase, the step and every check against its limit -- while demo clients send rows of the data
through the gateway. Ctrl-C stops only the following: the release goes on, and the command says
who drives it and how to stop it. On a cluster target, where the controller runs in the cluster,
the command ticks the release itself. How it ended is said in words; a release that did not make
it is a failed command (exit 1) naming the reason; a ledger that cannot be written is exit 3.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.live import Live

from launchbay.errors import PipelineFailed
from launchbay.rollout import daemon, view
from launchbay.rollout.engine import operations
from launchbay.rollout.engine.controller import Controller, run
from launchbay.rollout.engine.operations import Rollout
from launchbay.rollout.engine.phases import Phase
from launchbay.rollout.engine.release import LedgerUnavailable, Release
from launchbay.rollout.ledger import notify
from launchbay.rollout.ledger.store import SqlLedger
from launchbay.rollout.local.clients import Clients, sample_rows

FOLLOW_EVERY = 0.25
"""Seconds between two looks at the ledger while following the controller."""

Update = Callable[[Release, dict[str, Any]], None]
"""Shows a release and its latest analysis."""


def create(ctx: Rollout, version: str, author: str, console: Console) -> Release:
    """Record a release of `version`, say what it is compared with, and have it driven."""
    release = operations.create(ctx, version, author)
    what = f"against stable v{release.stable_version}" if release.stable_version else "(first version)"
    console.print(f"created release [bold]{release.name}[/] by {author} {what}")
    daemon.follow(ctx)
    return release


def waiting_or_done(r: Release) -> bool:
    """Where a foreground release stops being followed: a person must act, or it ended."""
    return r.phase.final or r.phase in (Phase.AWAITING_APPROVAL, Phase.FAILED)


def drive(
    ctx: Rollout,
    release: Release,
    console: Console,
    *,
    controller: Controller | None = None,
    traffic: float = 0.0,
    data: str | None = None,
) -> Release:
    """Follow (local) or tick (`controller` given: a cluster) `release` until it waits for
    approval or ends; return it as it is then.

    Args:
        traffic: demo requests per second through the local gateway (0: none).
        data: where the demo rows come from (default: the config's data).

    Raises:
        PipelineFailed: the release was rolled back, failed or was aborted (with the reason).
        LedgerUnavailable: the ledger cannot be written; the release stays where it is.
    """
    processes = ctx.target.processes()
    url = processes.url if processes is not None else ""
    where = url or f"the {ctx.cfg.rollout.target} target"
    console.print(f"[bold]{release.name}[/]: rollout through the gateway at [cyan]{where}[/]")
    rate = traffic if url else 0.0  # demo traffic only goes through the local gateway
    source = data or ctx.cfg.resolve_path(ctx.cfg.data.path)
    rows = sample_rows(source, list(ctx.cfg.data.features)) if rate > 0 else []
    load: Clients | None = None

    def extra() -> str:
        if load is None:
            return f"gateway {where}"
        s = load.summary()
        return (
            f"gateway {where} | demo traffic: {s['requests']} requests, "
            f"answered by {s['by_version']}, failed {s['failed']}"
        )

    def clients_for(r: Release) -> None:
        nonlocal load
        if rows and load is None and r.phase not in (Phase.PENDING, Phase.VERIFIED):
            # Clients arrive once something serves (the first version has no stable yet).
            load = Clients(url, rows, rate=rate).start()

    try:
        with Live(view.live_view(release, {}), console=console, refresh_per_second=4) as live:

            def update(r: Release, evidence: dict[str, Any]) -> None:
                clients_for(r)
                live.update(view.live_view(r, evidence, extra()))

            if controller is None:
                release = _follow(ctx, release, update)
            else:
                release = _tick(controller, release, update)
    except KeyboardInterrupt:
        console.print()
        console.print(_left_running(ctx, release, demo=load is not None))
        raise
    except BaseException:
        console.print()  # whatever is said next starts on a line of its own, not after the view
        raise
    finally:
        if load is not None:
            load.stop()
    console.print()
    explain_end(ctx, release, console)
    return release


def _follow(ctx: Rollout, release: Release, update: Update) -> Release:
    """Watch the local controller drive `release` (restarting the controller if it goes away)."""
    daemon.ensure(ctx.cfg, ctx.home, wait=60.0)
    while True:
        r = ctx.ledger.get(release.id)
        rec = daemon.status(ctx.home, ctx.model)
        if rec is not None and rec.ledger_error:
            raise LedgerUnavailable(
                f"{rec.ledger_error}\n{r.name} stays {view.where(r)}; nothing moves until the ledger "
                f"can be written again. The controller (pid {rec.pid}) keeps trying: `launchbay status`."
            )
        update(r, (rec.results.get(str(r.id)) if rec is not None else None) or {})
        if waiting_or_done(r):
            return r
        if rec is None or not rec.running:
            daemon.ensure(ctx.cfg, ctx.home, wait=60.0)  # it died: nothing may be left undriven
        time.sleep(FOLLOW_EVERY)


def _tick(controller: Controller, release: Release, update: Update) -> Release:
    """Tick `release` in this process (a cluster target), sending due notifications meanwhile."""
    ctx = controller.ctx
    notifier = notify.notifier(ctx.ledger, ctx.cfg) if isinstance(ctx.ledger, SqlLedger) else None
    if notifier is not None:
        notifier.start()

    def on_tick(r: Release) -> None:
        result = controller.last_result.get(r.id)
        update(r, result.evidence() if result else {})

    try:
        interval = ctx.cfg.rollout.interval
        return run(controller, release, interval=interval, until=waiting_or_done, on_tick=on_tick)
    finally:
        if notifier is not None:
            notifier.stop(flush=ctx.cfg.notifications.timeout)


def _left_running(ctx: Rollout, release: Release, demo: bool = False) -> str:
    """What Ctrl-C leaves behind, said plainly: the release is not abandoned (and, when this
    command was its only traffic, that its steps now wait for traffic of someone else's)."""
    r = ctx.ledger.get(release.id)
    if not (r.phase.live or r.phase is Phase.PENDING):
        return f"{r.name} is {r.phase.value}."
    rec = daemon.status(ctx.home, ctx.model)
    who = f"the controller (pid {rec.pid})" if rec is not None and rec.running else "the controller"
    if ctx.cfg.rollout.target != "local":
        who = "the cluster's controller"
    traffic = (
        "  the demo traffic stopped with this command: with no other traffic its analyses wait, and "
        f"at the progress deadline ({ctx.cfg.rollout.on_deadline}) it says so\n"
        if demo
        else ""
    )
    return (
        f"stopped following {r.name}; it goes on ({view.where(r)}), driven by {who}.\n{traffic}"
        f"  launchbay status    to see where it stands\n  launchbay abort {r.id}    to stop it"
    )


def explain_end(ctx: Rollout, release: Release, console: Console) -> None:
    """Say how a driven release stands: who must approve it, or why it ended.

    Raises:
        PipelineFailed: it was rolled back, failed or was aborted.
    """
    console.print(view.summary_line(release))
    if release.phase is Phase.AWAITING_APPROVAL:
        console.print(
            f"waiting for a release manager ({', '.join(release.plan.approvers)}):\n"
            f"  launchbay approve {release.id} --as NAME    or    launchbay reject {release.id} --as NAME"
        )
        return
    if release.phase in (Phase.ROLLED_BACK, Phase.FAILED, Phase.ABORTED):
        reason = view.why(release, ctx.ledger.history(release_id=release.id)) or "(no reason recorded)"
        raise PipelineFailed(f"{release.name} {release.phase.value}: {reason}")
