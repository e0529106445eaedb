"""Driving one release in the foreground: `launchbay run` and `launchbay release` without --detach.

The controller ticks the release until it waits for a person or ends, while a live view shows the
phase, the step and every check against its limit; on the local target, demo clients can send
rows of the data through the gateway meanwhile. How it ended is then said in words, and a release
that did not make it is a failed command (exit 1) naming the reason.
"""

from __future__ import annotations

from rich.console import Console
from rich.live import Live

from launchbay.errors import PipelineFailed
from launchbay.rollout import view
from launchbay.rollout.engine import operations
from launchbay.rollout.engine.controller import Controller, run
from launchbay.rollout.engine.operations import Rollout
from launchbay.rollout.engine.phases import Phase
from launchbay.rollout.engine.release import Release
from launchbay.rollout.ledger import notify
from launchbay.rollout.ledger.store import SqlLedger
from launchbay.rollout.local.clients import Clients, sample_rows


def create(ctx: Rollout, version: str, author: str, console: Console) -> Release:
    """Record a release of `version` and say what it is compared with."""
    release = operations.create(ctx, version, author)
    what = f"against stable v{release.stable_version}" if release.stable_version else "(first version)"
    console.print(f"created release [bold]{release.name}[/] by {author} {what}")
    return release


def drive(
    controller: Controller,
    release: Release,
    console: Console,
    *,
    traffic: float = 0.0,
    data: str | None = None,
) -> Release:
    """Tick `release` until it waits for approval or ends; return it as it is then.

    Args:
        traffic: demo requests per second through the local gateway (0: none).
        data: where the demo rows come from (default: the config's data).

    Raises:
        PipelineFailed: the release was rolled back, failed or was aborted (with the reason).
    """
    ctx = controller.ctx
    processes = ctx.target.processes()
    url = processes.url if processes is not None else ""
    where = url or f"the {ctx.cfg.rollout.target} target"
    console.print(f"[bold]{release.name}[/]: rollout through the gateway at [cyan]{where}[/]")
    rate = traffic if url else 0.0  # demo traffic only goes through the local gateway
    source = data or ctx.cfg.resolve_path(ctx.cfg.data.path)
    rows = sample_rows(source, list(ctx.cfg.data.features)) if rate > 0 else []
    load: Clients | None = None
    # Who must be told (awaiting approval, rolled back) hears it from here while this drives.
    notifier = notify.notifier(ctx.ledger, ctx.cfg) if isinstance(ctx.ledger, SqlLedger) else None
    if notifier is not None:
        notifier.start()

    def extra() -> str:
        if load is None:
            return f"gateway {where}"
        s = load.summary()
        return (
            f"gateway {where} | demo traffic: {s['requests']} requests, "
            f"answered by {s['by_version']}, failed {s['failed']}"
        )

    def waiting_or_done(r: Release) -> bool:
        return r.phase.final or r.phase in (Phase.AWAITING_APPROVAL, Phase.FAILED)

    try:
        with Live(view.live_view(release, {}), console=console, refresh_per_second=4) as live:

            def update(r: Release) -> None:
                nonlocal load
                if rows and load is None and r.phase not in (Phase.PENDING, Phase.VERIFIED):
                    # Clients arrive once something serves (the first version has no stable yet).
                    load = Clients(url, rows, rate=rate).start()
                result = controller.last_result.get(r.id)
                live.update(view.live_view(r, result.evidence() if result else {}, extra()))

            release = run(
                controller, release, interval=ctx.cfg.rollout.interval, until=waiting_or_done, on_tick=update
            )
    finally:
        if load is not None:
            load.stop()
        if notifier is not None:
            notifier.stop(flush=ctx.cfg.notifications.timeout)
    console.print()
    explain_end(ctx, release, console)
    return release


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
        events = ctx.ledger.history(release_id=release.id)
        reason = events[-1].reason if events else "(no reason recorded)"
        raise PipelineFailed(f"{release.name} {release.phase.value}: {reason}")
