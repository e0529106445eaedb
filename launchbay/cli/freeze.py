"""`launchbay freeze on|off|status`: an emergency change freeze, signed by a release manager.

While a freeze is in force (this one, or a `freeze:` window of the config) no release starts,
none is given more traffic and none is promoted; rollback, reject and abort still work.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Annotated

import typer

from launchbay.cli.app import AsOpt, ConfigOpt, JsonOpt, app, out, whoami
from launchbay.cli.rollout import KeyOpt
from launchbay.config import LaunchbayConfig, load_config
from launchbay.errors import UsageError
from launchbay.home import Home

UntilOpt = Annotated[
    str | None,
    typer.Option(help="When it ends by itself: a duration (90m, 4h, 2d) or an ISO time (2026-12-24T18:00Z)."),
]


def _until(text: str | None, now: float) -> float | None:
    """Seconds since the epoch of `--until` (None: until someone ends it)."""
    if text is None:
        return None
    t = text.strip()
    units = {"m": 60, "h": 3600, "d": 86400}
    if t[-1:] in units and t[:-1].replace(".", "", 1).isdigit():
        return now + float(t[:-1]) * units[t[-1]]
    try:
        at = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--until {text!r}: expected a duration (90m, 4h, 2d) or an ISO time") from None
    when = (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()
    if when <= now:
        raise UsageError(f"--until {text!r} is in the past")
    return when


@app.command()
def freeze(
    state: Annotated[str, typer.Argument(help="on, off, or status.")],
    config: ConfigOpt = None,
    as_: AsOpt = None,
    key: KeyOpt = None,
    reason: Annotated[str, typer.Option(help="Why (said with every refusal; required for on).")] = "",
    until: UntilOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Start or end an emergency change freeze of the model (release managers, signed), or show it."""
    from launchbay.rollout.engine import freeze as freezes
    from launchbay.rollout.ledger.store import SqlLedger

    if state not in ("on", "off", "status"):
        raise UsageError(f"freeze {state!r}: expected on, off or status")
    cfg = load_config(config)
    now = time.time()
    if state == "on" and not reason.strip():
        raise UsageError("freeze on needs --reason: it is said with every refusal")
    ends = _until(until, now) if state == "on" else None
    ledger = SqlLedger.for_config(cfg, Home.resolve(cfg.source).ensure())
    event = None
    if state != "status":
        event, _ = freezes.declare(cfg, ledger, state == "on", whoami(as_), key, reason.strip(), ends)
    frozen = freezes.active(cfg, ledger, cfg.model.name)
    upcoming = _next_window(cfg, now)
    if as_json:
        doc = {
            "model": cfg.model.name,
            "frozen": frozen.to_dict() if frozen else None,
            "changed": event is not None,
            "event": event.id if event else None,
            "next_window": upcoming,
        }
        typer.echo(json.dumps(doc))
        return
    if state == "off" and event is None:
        out.print(f"{cfg.model.name} had no emergency freeze; nothing was recorded")
    elif event is not None:
        out.print(f"recorded #{event.id}: {event.action} by {event.actor} (signed)")
    if frozen is not None:
        out.print(f"[yellow]frozen[/]: {frozen.describe()}; releases, advances and promotions wait")
    else:
        out.print(f"{cfg.model.name} is not frozen" + (f"; next window: {upcoming}" if upcoming else ""))


def _next_window(cfg: LaunchbayConfig, now: float) -> str | None:
    """The next configured window's name and start."""
    at = datetime.fromtimestamp(now, UTC)
    starts = [(w.next_start(at), w.name) for w in cfg.freeze]
    found = sorted((s, n) for s, n in starts if s is not None)
    return f"{found[0][1]!r} from {found[0][0].isoformat()}" if found else None

