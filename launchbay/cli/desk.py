"""Release managers' commands: `ui` (the page with the evidence and the decision) and `notify test`."""

from __future__ import annotations

import contextlib
import json
from typing import Annotated, Any, cast

import typer

from launchbay.cli.app import AsOpt, ConfigOpt, JsonOpt, app, err, out, whoami
from launchbay.config import load_config
from launchbay.errors import LaunchbayError, PipelineFailed, UsageError
from launchbay.home import Home


@app.command()
def ui(
    config: ConfigOpt = None,
    as_: AsOpt = None,
    key: Annotated[
        str | None,
        typer.Option(
            "--key", help="Your private key for decisions (default: as `launchbay approve` finds it)."
        ),
    ] = None,
    host: Annotated[
        str,
        typer.Option(help="Address to listen on. Loopback by default; anything else is reachable by others."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free one).", min=0, max=65535)] = 8765,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the address as one JSON line once the page listens.")
    ] = False,
) -> None:
    """The release managers' page: releases, timelines, analyses, gate reports, signature and
    provenance, the event log, and approve/reject signed as you. Runs until Ctrl-C."""
    from launchbay.desk.serve import is_loopback, listen, serve
    from launchbay.desk.signing import Signer
    from launchbay.desk.timeline import RangeSource
    from launchbay.rollout import wiring

    cfg = load_config(config)
    ctx = wiring.rollout(cfg, Home.resolve(cfg.source).ensure())
    sock = listen(host, port)  # before anything slow: a port in use is said at once
    if not is_loopback(host):
        err.print(
            f"[yellow]warning[/]: listening on {host}, not loopback: anyone who can reach it and has the "
            "address with its token can read the evidence and decide as you, over plain HTTP"
        )
    signer = Signer.load(whoami(as_), key)
    source: RangeSource | None
    try:
        source = cast(RangeSource, wiring.metrics(ctx))
    except LaunchbayError as exc:
        err.print(f"[yellow]no live metrics[/]: {exc.message}; timelines show the recorded analyses")
        source = None

    def ready(url: str) -> None:
        if as_json:
            doc = {"url": url, "signer": signer.name, "key_id": signer.key_id, "cannot_sign": signer.problem}
            print(json.dumps(doc), flush=True)
            return
        out.print(f"release managers' page: [bold cyan]{url}[/]")
        out.print(f"decisions sign as {signer.name}" + (f" (key {signer.key_id})" if signer.key_id else ""))
        if signer.problem:
            out.print(f"[yellow]{signer.problem}[/]: the page shows evidence but offers no decision")

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how the page is stopped
        serve(ctx, signer, source, sock, ready)


notify_app = typer.Typer(
    help="Notifications: webhooks told when a release needs someone or ends.", no_args_is_help=True
)
app.add_typer(notify_app, name="notify")


@notify_app.command("test")
def notify_test(
    config: ConfigOpt = None,
    webhook: Annotated[str | None, typer.Option(help="Only this webhook (by its name).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Send a sample awaiting-approval notification to each configured webhook (nothing is recorded)."""
    from launchbay.rollout.ledger import notify

    cfg = load_config(config)
    hooks = cfg.notifications.webhooks
    if not hooks:
        raise UsageError("notifications.webhooks in launchbay.yaml names no webhook: nothing to test")
    if webhook is not None:
        hooks = [w for w in hooks if w.name == webhook]
        if not hooks:
            names = ", ".join(w.name for w in cfg.notifications.webhooks)
            raise UsageError(f"--webhook {webhook}: no such webhook (configured: {names})")
    doc = {
        **notify.payload(notify.sample_event(cfg.model.name), None, cfg.notifications.page_url),
        "test": True,
    }
    results: list[dict[str, Any]] = []
    for w in hooks:
        got = notify.send(w, doc, cfg.base_dir, cfg.notifications.timeout)
        results.append({"webhook": w.name, "format": w.format, "ok": got.ok, "status": got.status,
                        "error": got.error, "seconds": round(got.seconds, 3)})  # fmt: skip
    if as_json:
        out.print_json(json.dumps(results))
    else:
        for r in results:
            said = (
                f"delivered (HTTP {r['status']}, {r['seconds']:.2f}s)"
                if r["ok"]
                else f"[red]failed[/]: {r['error']}"
            )
            out.print(f"{r['webhook']} ({r['format']}): {said}")
    if not all(r["ok"] for r in results):
        raise PipelineFailed("a test notification was not delivered")
