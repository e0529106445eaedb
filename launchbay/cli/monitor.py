"""`launchbay monitor` (what the production monitor sees) and `launchbay feedback FILE` (labels)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from launchbay.cli.app import AsOpt, ConfigOpt, JsonOpt, app, out, whoami
from launchbay.config import LaunchbayConfig, load_config
from launchbay.errors import UsageError
from launchbay.home import Home


def _monitored(cfg: LaunchbayConfig) -> None:
    if cfg.monitor is None:
        raise UsageError("this model is not monitored: add a monitor: section to launchbay.yaml")


@app.command()
def monitor(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Show what the production monitor sees: live drift, live performance, alarms, retrains."""
    from launchbay.rollout.local.feedback import TOKEN_FILE
    from launchbay.rollout.monitor.state import State, summary

    cfg = load_config(config)
    _monitored(cfg)
    assert cfg.monitor is not None
    if cfg.rollout.target != "local":
        raise UsageError(
            "in a cluster the monitor runs in launchbay's controller: `kubectl get model "
            f"{cfg.model.name} -n {cfg.kubernetes.namespace} -o jsonpath='{{.status.monitor}}'`, and its "
            "alarms in `launchbay history`"
        )
    where = Home.resolve(cfg.source).root / "local" / cfg.model.name
    doc = {
        "model": cfg.model.name,
        **summary(State.load(where / "monitor"), cfg.monitor),
        "feedback_token_file": str(where / TOKEN_FILE),
    }
    if as_json:
        typer.echo(json.dumps(doc, indent=2, default=str))
        return
    _print(doc)


def _print(doc: dict[str, Any]) -> None:
    out.print(
        f"[bold]{doc['model']}[/]: watching v{doc['version']}" if doc["version"] else "no version serves yet"
    )
    if doc["unmonitored"]:
        out.print(f"[yellow]not monitored[/]: {doc['unmonitored']}")
    out.print(
        f"rows {doc['rows']} (repeated {doc['repeated']} counted once, lost {doc['lost']}), "
        f"labels {doc['labels']}; at most one false alarm per {doc['false_alarm_every_days']:g} days"
    )
    if d := doc["drift"]:
        moved = ", ".join(
            f"{k} 10^{v:g}" for k, v in sorted(d["by_feature_log10"].items(), key=lambda kv: -kv[1])[:4]
        )
        out.print(f"drift: evidence 10^{d['evidence_log10']:g} of 10^{d['alarm_log10']:g} needed ({moved})")
    if p := doc["performance"]:
        rate = "no labels yet" if p["live_rate"] is None else f"{p['live_rate']:.1%} wrong of {p['labelled']}"
        out.print(
            f"performance: {rate}, limit {p['limit']:.1%}; evidence 10^{p['evidence_log10']:g} "
            f"of 10^{p['alarm_log10']:g}"
        )
    for a in doc["alarms"]:
        out.print(
            f"[red]ALARM[/] {a['kind']} at {time.strftime('%H:%M:%S', time.gmtime(a['at']))}: {a['reason']}"
        )
    if r := doc["retrain"]:
        ended = r.get("ended")
        state = (
            "running" if ended is None else ("ended: " + json.dumps({k: v for k, v in ended.items() if v}))
        )
        out.print(f"retrain on {r['rows']} labelled rows: {state}")
    if doc["waiting_for"]:
        out.print(f"waiting for: {doc['waiting_for']}")


@app.command()
def feedback(
    file: Annotated[Path, typer.Argument(help="CSV, Parquet, JSON or JSON-lines: request ids and labels.")],
    config: ConfigOpt = None,
    as_: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Hand in labels of answered requests (by their X-Request-Id) for the monitor to judge."""
    from launchbay.rollout.local import feedback as labels

    cfg = load_config(config)
    _monitored(cfg)
    assert cfg.monitor is not None
    columns = cfg.monitor.feedback
    try:
        items = labels.read_file(file, columns.id_column, columns.label_column or cfg.data.target)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    stored = None
    if cfg.rollout.target == "local":
        where = Home.resolve(cfg.source).root / "local" / cfg.model.name
        accepted = labels.append(where, items, whoami(as_))
    elif cfg.monitor.store is None:
        raise UsageError("in a cluster, labels go to monitor.store: set it (an s3:// or other fsspec URL)")
    else:
        from launchbay.rollout.monitor.labels import upload

        stored, accepted = upload(cfg, cfg.monitor.store, items, whoami(as_)), len(items)
    if as_json:
        typer.echo(json.dumps({"model": cfg.model.name, "accepted": accepted, "stored": stored}))
        return
    out.print(f"{accepted} labels kept for {cfg.model.name}" + (f" ({stored})" if stored else ""))
