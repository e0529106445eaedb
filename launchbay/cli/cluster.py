"""Verbs of launchbay installed once in a cluster: the cluster controller, the ledger's schema."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from launchbay.cli.app import JsonOpt, app, err, out
from launchbay.errors import EnvironmentProblem, UsageError
from launchbay.home import Home

ledger_app = typer.Typer(
    help="The ledger's schema: its version, and upgrades (run once per launchbay upgrade)."
)
app.add_typer(ledger_app, name="ledger")


def _client(kubeconfig: Path | None, context: str | None) -> Any:
    import httpx
    from lightkube import Client, KubeConfig
    from lightkube.core.exceptions import ConfigError as KubeConfigError

    try:
        conf = KubeConfig.from_file(kubeconfig) if kubeconfig else KubeConfig.from_env()
        single = conf.get(context) if context else conf
        # Every call has a deadline: a hung API call ends the round, it does not freeze the loop.
        return Client(config=single, field_manager="launchbay-controller", timeout=httpx.Timeout(15))
    except (KubeConfigError, OSError, KeyError) as exc:
        raise EnvironmentProblem(
            f"no Kubernetes configuration: {exc} (give --kubeconfig, set $KUBECONFIG, or run in a pod "
            "with a service account)"
        ) from None


@app.command("cluster-controller")
def cluster_controller(
    namespace: Annotated[
        list[str] | None,
        typer.Option(
            "--namespace", "-n", help="A team namespace to serve (repeat; default: every namespace)."
        ),
    ] = None,
    kubeconfig: Annotated[
        Path | None, typer.Option(help="Default: in-cluster service account, else $KUBECONFIG.")
    ] = None,
    context: Annotated[str | None, typer.Option(help="kubeconfig context.")] = None,
    lease: Annotated[
        str, typer.Option(help="Name of the Lease replicas elect a leader with.")
    ] = "launchbay-controller",
    lease_namespace: Annotated[
        str, typer.Option(help="Namespace of the Lease (launchbay's own).", envvar="POD_NAMESPACE")
    ] = "launchbay",
    identity: Annotated[
        str | None, typer.Option(help="This replica's name in the Lease (default: $POD_NAME, else host-pid).")
    ] = None,
    lease_seconds: Annotated[
        float, typer.Option(min=2, help="Lease duration: a standby takes over after it.")
    ] = 15,
    interval: Annotated[float, typer.Option(min=0.2, help="Seconds between rounds.")] = 2.0,
    port: Annotated[int, typer.Option(min=0, max=65535, help="/healthz, /readyz and /metrics (0: off).")] = 0,
    prometheus_url: Annotated[
        str | None,
        typer.Option(
            help="Prometheus for every model without its own rollout.prometheus_url.",
            envvar="LAUNCHBAY_PROMETHEUS_URL",
        ),
    ] = None,
    prometheus_ca_file: Annotated[
        Path | None,
        typer.Option(
            help="CA bundle of a Prometheus behind a private CA.", envvar="LAUNCHBAY_PROMETHEUS_CA_FILE"
        ),
    ] = None,
    workdir: Annotated[
        Path | None, typer.Option(help="Scratch files (default: $LAUNCHBAY_HOME/cluster).")
    ] = None,
    once: Annotated[bool, typer.Option(help="One round (if leading), then exit.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Each round's outcome as one JSON line.")] = False,
) -> None:
    """The controller of a cluster shared by teams: every `Model` object (launchbay.io/v1alpha1),
    one replica at a time (a Lease elects it), decisions to the shared ledger
    ($LAUNCHBAY_LEDGER_URL), each Model's status mirroring its newest release."""
    from prometheus_client import CollectorRegistry

    from launchbay.rollout.exported import ControllerMetrics
    from launchbay.rollout.ledger.store import LEDGER_ENV, SqlLedger
    from launchbay.rollout.operator import probes
    from launchbay.rollout.operator.leader import LeaderElection
    from launchbay.rollout.operator.loop import Health, Operator, run
    from launchbay.rollout.operator.resource import Settings

    url = os.environ.get(LEDGER_ENV)
    if not url:
        raise UsageError(
            f"the cluster controller needs the shared ledger: set {LEDGER_ENV} (e.g. postgresql://...; "
            "the chart takes it from the launchbay-settings Secret)"
        )
    if prometheus_ca_file is not None and not prometheus_ca_file.is_file():
        raise UsageError(
            f"--prometheus-ca-file {prometheus_ca_file}: no such file (expected a PEM CA bundle)"
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    home = Home.resolve(None).ensure()
    work = workdir or home.root / "cluster"
    settings = Settings(work, str(kubeconfig) if kubeconfig else None, context, prometheus_url,
                        str(prometheus_ca_file) if prometheus_ca_file else None)  # fmt: skip
    client = _client(kubeconfig, context)
    registry = CollectorRegistry()
    exported = ControllerMetrics(registry)
    ledger = SqlLedger(url)  # refuses a ledger without the schema this launchbay needs
    op = Operator(client, settings, ledger, home, tuple(namespace or ()), exported)
    me = identity or os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
    election = LeaderElection(client, lease_namespace, lease, me, duration=lease_seconds)
    health = Health(stall_after=max(30.0, 10 * interval))
    server = probes.serve(port, health, registry) if port else None
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    err.print(f"cluster controller {me}: lease {lease_namespace}/{lease}, every {interval:g}s"
              + (f", probes and metrics on :{server.server_address[1]}" if server else ""))  # fmt: skip

    def said(outcome: dict[tuple[str, str], str | None]) -> None:
        if as_json:
            line = {"models": [{"namespace": ns, "name": n, "problem": p} for (ns, n), p in outcome.items()]}
            print(json.dumps(line), flush=True)

    try:
        run(op, election, health, interval, stopping, once=once, on_round=said)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()


LedgerUrlOpt = Annotated[
    str | None,
    typer.Option("--url", help="The ledger (default: $LAUNCHBAY_LEDGER_URL, else this machine's)."),
]


def _engine(url: str | None) -> Any:
    """The ledger's database, without the checks a connecting launchbay makes (this verb is how a
    ledger behind them is brought forward)."""
    import sqlalchemy as sa

    from launchbay.rollout.ledger.store import SqlLedger, driver

    return sa.create_engine(driver(SqlLedger.url_for(Home.resolve(None), url)))


@ledger_app.command("upgrade")
def ledger_upgrade(
    url: LedgerUrlOpt = None,
    revision: Annotated[
        str, typer.Option(help="Stop at this revision (default: this launchbay's).")
    ] = "head",
    as_json: JsonOpt = False,
) -> None:
    """Bring the ledger's schema to this launchbay's version (what the chart's upgrade Job runs)."""
    from alembic.util import CommandError

    from launchbay.rollout.ledger import migrations

    try:
        before, after = migrations.upgrade(_engine(url), revision)
    except CommandError as exc:
        raise UsageError(f"--revision {revision}: {exc}") from None
    if as_json:
        out.print_json(json.dumps({"from": before, "to": after}))
    else:
        out.print(
            f"ledger schema: {before or 'none'} -> {after}"
            if before != after
            else f"ledger schema: {after} (current)"
        )


@ledger_app.command("version")
def ledger_version(url: LedgerUrlOpt = None, as_json: JsonOpt = False) -> None:
    """The ledger's schema version, and the one this launchbay needs."""
    from launchbay.rollout.ledger import migrations

    current, head = migrations.current(_engine(url)), migrations.head()
    if as_json:
        out.print_json(json.dumps({"current": current, "head": head}))
    else:
        out.print(f"ledger schema {current or 'none'}; this launchbay needs {head}")
