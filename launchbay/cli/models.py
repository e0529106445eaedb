"""Model commands: status (registry and releases), verify (signature), serve (one version), keys."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from launchbay.cli.app import ConfigOpt, JsonOpt, ModelRefArg, RuntimeOpt, app, err, out
from launchbay.config import config_path, load_config
from launchbay.errors import PipelineFailed, UsageError
from launchbay.home import Home


@app.command()
def status(
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    as_markdown: Annotated[
        bool,
        typer.Option("--markdown", help="Print Markdown (for a CI job summary, a ticket, a pull request)."),
    ] = False,
) -> None:
    """Show the model's registry state (champion, challenger) and its releases with their evidence."""
    from launchbay.checks.metric import METRICS
    from launchbay.registry import MlflowRegistry
    from launchbay.rollout import status as releases
    from launchbay.rollout import view
    from launchbay.rollout.engine.phases import Phase

    cfg = load_config(config)
    home = Home.resolve(cfg.source)
    state = MlflowRegistry(cfg, home).state(cfg.model.name)
    state["releases"] = releases.releases(cfg, home)
    state["gateway"] = releases.gateway(cfg, home)
    state["controller"] = releases.controller(cfg, home)
    state["freeze"] = releases.frozen(cfg, home)
    state["monitor"] = releases.monitored(cfg, home)
    if as_json:
        out.print_json(json.dumps(state, default=str))
        return
    shown = ("rmse", "mae", "r2") if cfg.model.task == "regression" else ("roc_auc", "precision", "recall")
    if as_markdown:
        from launchbay.rollout.summary import markdown

        print(markdown(cfg.model.name, state, shown))  # plain: no console markup or wrapping
        return
    if not state["registered"]:
        out.print(f"{cfg.model.name}: no model registered yet (run `launchbay run`)")
        return
    table = Table(title=f"{cfg.model.name} ({state['versions']} version(s), {cfg.model.task})")
    table.add_column("alias", no_wrap=True)
    table.add_column("version", no_wrap=True)
    for col in (*(METRICS[m].label for m in shown), "registered", "git commit"):
        table.add_column(col, overflow="fold")
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
            *(_num(m.get(k)) for k in shown),
            created,
            (v["git_commit"] or "")[:10],
        )
    out.print(table)
    if (cmp := state.get("comparison")) is not None:
        if cmp["same_rows"]:
            pairs = ", ".join(
                f"{METRICS[k].label} {_num(cmp['challenger'].get(k))} vs {_num(cmp['champion'].get(k))}"
                for k in shown
                if k in cmp["champion"]
            )
            out.print(f"challenger vs champion on the same held-out rows: {pairs}", highlight=False)
        else:
            out.print(f"champion and challenger: {cmp['note']}")
    if (frozen := state["freeze"]) is not None:
        out.print(f"[yellow]frozen[/] by {frozen['describe']}: releases, advances and promotions wait; "
                  "rollback works", highlight=False)  # fmt: skip
    if (watched := state["monitor"]) is not None:
        out.print(view.monitor_line(watched), highlight=False)
    if (gw := state["gateway"]) is not None:
        out.print(view.gateway_line(gw))
    if (c := state["controller"]) is not None:
        for line in view.controller_lines(c):
            out.print(line)
    if state["releases"]:
        out.print(view.releases_table(state["releases"]))
        for r in state["releases"]:
            if r.get("reason"):
                out.print(f"{r['name']} {r['phase']}: {r['reason']}", highlight=False)
        for r in state["releases"]:
            if Phase(r["phase"]).live:
                out.print(view.evidence_table(r["analysis"], title=f"{r['name']}: latest analysis"))
        newest = state["releases"][0]
        if newest["phase"] in ("rolled-back", "failed") and newest["analysis"].get("checks"):
            title = f"{newest['name']}: the analysis that decided it"
            out.print(view.evidence_table(newest["analysis"], title=title))


keys_app = typer.Typer(help="Signing keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("init")
def keys_init(
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    force: Annotated[
        bool, typer.Option(help="Replace existing keys (old signatures stop verifying).")
    ] = False,
    public_key: Annotated[
        Path | None,
        typer.Option(
            help="Also write the public key here, to commit: CI and the cluster verify against it "
            "(default: keys/signing-key.pub beside launchbay.yaml, when there is one)."
        ),
    ] = None,
) -> None:
    """Create a signing key pair under the state directory (private key readable by you only), and
    a copy of its public half in the repository (what a fresh checkout verifies against)."""
    from launchbay.checks.keys import keys_dir
    from launchbay.checks.signature import PRIVATE_KEY, PUBLIC_KEY, generate_keypair

    source = config_path(config)
    directory = keys_dir(Home.resolve(source).ensure())
    if public_key is None and source.exists():
        public_key = source.parent / "keys" / "signing-key.pub"
    try:
        private, public = generate_keypair(directory, force=force)
        created = True
    except FileExistsError:
        private, public, created = directory / PRIVATE_KEY, directory / PUBLIC_KEY, False
    copied = None
    if public_key is not None and public.exists():
        public_key.parent.mkdir(parents=True, exist_ok=True)
        if not public_key.exists() or public_key.read_bytes() != public.read_bytes():
            public_key.write_bytes(public.read_bytes())
        copied = public_key
    if as_json:
        doc = {
            "private_key": str(private),
            "public_key": str(public),
            "created": created,
            "directory": str(directory),
            "committed_public_key": str(copied) if copied else None,
        }
        out.print_json(json.dumps(doc))
    elif not created:
        out.print(f"keys already exist in {directory} (use --force to replace them)")
    else:
        out.print(f"private key: {private} (mode 600, never commit it)\npublic key:  {public}")
    if copied is not None and not as_json:
        out.print(f"public key for the repository: {copied} (commit it; signing.trusted_keys lists it)")


@keys_app.command("approver")
def keys_approver(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="The approver, as the config's approvers name them.")
    ],
    public_key: Annotated[
        Path | None, typer.Option(help="Write the public key here too (the path the config lists).")
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Replace an existing key (earlier approvals still audit).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create your approver key pair: the private key stays in your own config directory (0600),
    the public key goes into the project's config (`approval.approvers.NAME`)."""
    from launchbay.checks import approvals

    private = approvals.default_key(name)
    public = public_key or private.with_suffix(".pub")
    try:
        approvals.generate(private, public, force=force)
    except FileExistsError:
        try:  # the person already has a key: write its public half where this project wants it
            approvals.write_public(approvals.load_private(private), public)
        except ValueError as exc:
            raise UsageError(f"{private}: {exc} (replace it with --force)") from None
        if as_json:
            doc = {"private_key": str(private), "public_key": str(public), "created": False}
            out.print_json(json.dumps(doc))
        else:
            out.print(f"{name}'s key already exists: {private} (public key written to {public})")
        return
    if public_key is not None:
        private.with_suffix(".pub").write_bytes(public.read_bytes())
    if as_json:
        out.print_json(json.dumps({"private_key": str(private), "public_key": str(public), "created": True}))
        return
    out.print(
        f"private key: {private} (mode 600: only you can sign as {name})\n"
        f"public key:  {public}  -> in launchbay.yaml: approval.approvers.{name}: <that path>"
    )


@app.command()
def verify(model_ref: ModelRefArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Verify a registered model's signature and provenance against the trusted keys."""
    from launchbay.checks.registered import verify_registered

    cfg = load_config(config)
    checked = verify_registered(cfg, Home.resolve(cfg.source), model_ref)
    if as_json:
        out.print_json(json.dumps(checked.to_dict(), default=str))
    else:
        colour = "green" if checked.verdict.ok else "red"
        out.print(
            f"{model_ref} (version {checked.version}): [{colour}]{checked.verdict.value}[/] {checked.message}"
        )
        if checked.origin is not None:
            for key, value in checked.origin.to_dict().items():
                out.print(f"  {key}: {value}")
    if not checked.verdict.ok:
        raise PipelineFailed(f"{model_ref}: signature check {checked.verdict.value}: {checked.message}")


@app.command()
def card(
    model_ref: ModelRefArg,
    config: ConfigOpt = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the card here.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a version's model card (Hugging Face format): the signed card, checked against its
    signature and provenance, then its rollout from the ledger."""
    from launchbay.rollout.card import compose

    cfg = load_config(config)
    composed = compose(cfg, Home.resolve(cfg.source), model_ref)
    if output is not None:
        output.write_text(composed.text)
    if as_json:
        out.print_json(json.dumps({**composed.to_dict(), "file": str(output) if output else None}))
    elif output is None:
        print(composed.text)  # plain: Markdown, no console markup or wrapping
    else:
        out.print(f"wrote {output}: the signed card of {composed.model} v{composed.version} (verified), "
                  f"{composed.releases} release(s)")  # fmt: skip


@app.command()
def serve(
    model_ref: ModelRefArg,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 3000,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    config: ConfigOpt = None,
    runtime: RuntimeOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Announce the server as one JSON line before it starts.")
    ] = False,
) -> None:
    """Verify a registered model, then serve it over HTTP in the foreground (BentoML or lean)."""
    from launchbay.serving import deploy

    cfg = load_config(config)
    home = Home.resolve(cfg.source).ensure()
    chosen = runtime.value if runtime else None
    command = deploy.prepare_serve(cfg, home, model_ref, host, port, chosen)  # type: ignore[arg-type]
    if as_json:
        url = f"http://{host}:{port}"
        doc = {"model": model_ref, "url": url, "verified": True, "runtime": command.runtime}
        print(json.dumps(doc), flush=True)
    else:
        err.print(f"serving {model_ref} on http://{host}:{port} ({command.runtime}, signature verified)")
    sys.stdout.flush()
    # In the Bento's directory, never the checkout (`python -m` puts its cwd on sys.path): the
    # model imports the user's code from its Bento only, as it does on the local target.
    os.chdir(command.cwd)
    os.execve(command.argv[0], command.argv, command.env)  # become the server: signals and PID are its


def _num(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, (int, float)) else "-"
