"""How releases and their evidence look to people: rich tables for the terminal, dicts for --json."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from launchbay.rollout.engine.phases import Phase
from launchbay.rollout.engine.release import Event, Release

_PHASE_STYLE = {
    Phase.PROMOTED: "bold green",
    Phase.ROLLED_BACK: "bold red",
    Phase.FAILED: "bold red",
    Phase.ABORTED: "yellow",
    Phase.AWAITING_APPROVAL: "bold magenta",
    Phase.SHADOW: "cyan",
    Phase.CANARY: "cyan",
}
_VERDICT_STYLE = {"PASS": "green", "FAIL": "bold red", "ERROR": "red", "INCONCLUSIVE": "yellow"}


def when(ts: float | None) -> str:
    """A local wall-clock time for a timestamp."""
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def step_text(release: Release) -> str:
    """`2/5 canary weight 25%` (or `-` when there is no step)."""
    if not release.plan or release.phase in (Phase.PENDING, Phase.VERIFIED) or release.phase.final:
        return "-"
    i = min(release.step_index, len(release.plan) - 1)
    return f"{i + 1}/{len(release.plan)} {release.plan[i].describe()}"


def where(release: Release) -> str:
    """Where a release stands, in words: `at canary 25% (step 4/6)`, `in shadow`, `promoted`."""
    if release.phase in (Phase.SHADOW, Phase.CANARY, Phase.AWAITING_APPROVAL) and release.plan:
        i = min(release.step_index, len(release.plan) - 1)
        split = release.plan.traffic(i)
        share = "mirrored" if split.mirror else f"{split.canary_weight}%"
        state = "awaiting approval" if release.phase is Phase.AWAITING_APPROVAL else release.phase.value
        return f"{state}, candidate traffic {share} (step {i + 1}/{len(release.plan)})"
    return release.phase.value


def moved_in(release: Release, events: list[Event]) -> Event | None:
    """The event that put the release in its phase (None when none is recorded)."""
    moved = [
        e
        for e in events
        if e.release_id == release.id and e.phase_to == release.phase.value and e.phase_from != e.phase_to
    ]
    return moved[-1] if moved else None


def why(release: Release, events: list[Event]) -> str:
    """The reason of the event that put the release in its phase ("" when none is recorded)."""
    event = moved_in(release, events)
    return event.reason if event is not None else ""


def controller_lines(c: dict[str, Any]) -> list[Text]:
    """How the controller stands: running and the world as the ledger says, or what differs and
    why, a ledger it cannot write, or not running (and why)."""
    lines: list[Text] = []

    def say(text: str, style: str = "") -> None:
        lines.append(Text(text, style=style))

    if c.get("stopped_on_purpose") and not c.get("running"):
        say(
            f"controller stopped with `launchbay down` at {when(c['stopped_on_purpose'])}; the next "
            "release, approve, reject, rollback or abort starts it again",
            "yellow",
        )
        return lines
    if not c.get("running"):
        say("controller NOT running (it could not be started: see `launchbay controller`)", "bold red")
        return lines
    age = c.get("heartbeat_age")
    beat = f"last round {age:g}s ago" if age is not None else "starting"
    started = "; it was not running and has been started again" if c.get("restarted") else ""
    say(f"controller running (pid {c['pid']}, {beat}){started}", "bold red" if c.get("stuck") else "green")
    if c.get("stuck"):
        say("  no round completed for a long while (paused, hung): the next command replaces it", "bold red")
    if c.get("ledger_error"):
        say(
            f"  ledger NOT WRITABLE since {when(c.get('ledger_error_since'))}: {c['ledger_error']}; "
            "nothing moves until it can be recorded (retried every round)",
            "bold red",
        )
    world = c.get("world") or {}
    if world.get("converged"):
        say(f"  the world is as the ledger says (generation {world.get('generation')})", "green")
    elif world:
        say("  the world does not match the ledger yet: " + "; ".join(world.get("problems") or []), "red")
    retiring = (world.get("desired") or {}).get("retire_at") or {}
    for version, until in sorted(retiring.items()):
        say(f"  v{version} stays warm until {when(until)}, then stops")
    if c.get("error"):
        say(f"  last round: {c['error']}", "red")
    return lines


def monitor_line(m: dict[str, Any]) -> Text:
    """`monitor: v3, 12,400 rows, no alarm (...)` or the alarm and what the monitor waits for."""
    if not m["monitored"]:
        return Text(f"monitor: {m['unmonitored'] or m['waiting_for'] or 'not watching yet'}", style="yellow")
    line = Text(f"monitor: v{m['version']}, {m['rows']:,} rows, {m['labels']:,} labels, ")
    if m["alarms"]:
        line.append("ALARM " + "; ".join(a["reason"] for a in m["alarms"]), style="red")
    else:
        rate = f"at most one false alarm per {m['false_alarm_every_days']:g} days"
        line.append(f"no alarm ({rate})", style="green")
    if (r := m["retrain"]) is not None:
        ended = r.get("ended")
        line.append("; retrain " + ("running" if ended is None else f"ended: {ended.get('phase') or ended}"))
    if m["waiting_for"]:
        line.append(f"; waiting for {m['waiting_for']}")
    return line


def gateway_line(gw: dict[str, Any]) -> Text:
    """`gateway http://... up (pid 4, 2 restarts: last worker killed by signal 9)` or DOWN since."""
    if gw["up"]:
        line = Text(f"gateway {gw['url']} up (pid {gw['pid']}", style="green")
        if gw["restarts"]:
            line.append(f", {gw['restarts']} restart(s); last: {gw['last_exit']}")
        line.append(")")
        return line
    return Text(f"gateway {gw['url']} DOWN since {when(gw['down_since'])}", style="bold red")


def release_dict(release: Release, analysis: dict[str, Any], routes: dict[str, Any] | None) -> dict[str, Any]:
    """JSON form of a release with its latest evidence."""
    return {
        "id": release.id,
        "name": release.name,
        "model": release.model,
        "version": release.version,
        "stable_version": release.stable_version,
        "author": release.author,
        "phase": release.phase.value,
        "step": step_text(release),
        "step_index": release.step_index,
        "plan": [s.model_dump() for s in release.plan.steps],
        "created_at": release.created_at,
        "updated_at": release.updated_at,
        "consecutive_errors": release.consecutive_errors,
        "analysis": analysis,
        "routes": routes,
    }


def evidence_table(analysis: dict[str, Any], title: str = "latest analysis") -> Table:
    """Each check of an analysis: observed against expected, with its verdict."""
    table = Table(title=title, title_justify="left", expand=False)
    for col in ("check", "observed", "expected", "verdict", "detail"):
        table.add_column(col)
    for c in analysis.get("checks", []):
        observed = "-" if c.get("observed") is None else str(c["observed"])
        table.add_row(
            c["check"],
            observed,
            str(c.get("expected", "")),
            Text(c["verdict"], style=_VERDICT_STYLE.get(c["verdict"], "")),
            str(c.get("detail") or ""),
        )
    return table


def releases_table(rows: list[dict[str, Any]]) -> Table:
    """Releases (from `release_dict`), newest first."""
    table = Table(title="releases", title_justify="left")
    # Identifiers are never cut (a narrow terminal wraps the other columns instead).
    table.add_column("release", no_wrap=True, min_width=max((len(r["name"]) for r in rows), default=7))
    table.add_column("phase", no_wrap=True)
    for col in ("step", "canary weight", "stable", "author", "analysis", "updated"):
        table.add_column(col, overflow="fold")
    for r in rows:
        routes = r.get("routes") or {}
        live = Phase(r["phase"]).live
        weight = f"{routes.get('canary_weight', 0)}%" + (" + mirror" if routes.get("mirror") else "")
        verdict = (r.get("analysis") or {}).get("verdict", "-")
        table.add_row(
            r["name"],
            Text(r["phase"], style=_PHASE_STYLE.get(Phase(r["phase"]), "")),
            r["step"],
            weight if live else "-",
            r["stable_version"] or "-",
            r["author"],
            Text(verdict, style=_VERDICT_STYLE.get(verdict, "")),
            when(r["updated_at"]),
        )
    return table


def live_view(release: Release, analysis: dict[str, Any], extra: str = "") -> RenderableType:
    """What `launchbay run` shows while a rollout is under way."""
    head = Text.assemble(
        (release.name, "bold"),
        "  phase ",
        (release.phase.value, _PHASE_STYLE.get(release.phase, "")),
        f"  step {step_text(release)}",
        f"  stable v{release.stable_version}" if release.stable_version else "",
    )
    parts: list[RenderableType] = [head]
    if extra:
        parts.append(Text(extra, style="dim"))
    if analysis.get("checks"):
        parts.append(evidence_table(analysis, title="analysis (candidate against its SLOs and stable)"))
    return Group(*parts)


def history_table(events: list[Event], title: str, width: int = 200) -> RenderableType:
    """The event log, oldest first: a table, or on a terminal narrower than 120 columns one
    line per event with its reason indented below (names and ids are never cut)."""
    rows = []
    for e in events:
        reason = e.reason
        verdict = e.evidence.get("verdict") if e.action == "analysis" else None
        if verdict and e.evidence.get("checks"):
            nums = ", ".join(
                f"{c['check']}={c['observed']}" for c in e.evidence["checks"] if c.get("observed") is not None
            )
            reason = f"{reason} ({nums})" if nums else reason
        rows.append((when(e.at), f"#{e.release_id}", e.actor, e.action, e.phase_to or "", reason))
    if width < 120:
        lines: list[RenderableType] = [Text(title, style="bold")]
        for stamp, rid, actor, action, phase, reason in rows:
            lines.append(Text.assemble(f"{stamp} {rid} ", (actor, "cyan"), f" {action} -> ", (phase, "bold")))
            if reason:
                lines.append(Text(f"    {reason}", style="dim"))
        return Group(*lines)
    table = Table(title=title, title_justify="left")
    for col in ("time", "release", "actor", "action", "phase"):
        table.add_column(col, no_wrap=True)
    table.add_column("reason", overflow="fold", ratio=1)
    for row in rows:
        table.add_row(*row)
    return table


def summary_line(release: Release) -> Text:
    """One line saying how a release ended (or where it waits)."""
    style = _PHASE_STYLE.get(release.phase, "")
    return Text.assemble((release.name, "bold"), ": ", (release.phase.value, style))
