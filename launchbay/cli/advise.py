"""`launchbay measure` and `launchbay advise`: serverless or Kubernetes, from measurements."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.table import Table

from launchbay.cli.app import ConfigOpt, JsonOpt, ModelRefArg, app, out
from launchbay.config import LaunchbayConfig, load_config
from launchbay.errors import UsageError
from launchbay.home import Home


def _version(cfg: LaunchbayConfig, home: Home, model_ref: str) -> str:
    from launchbay.registry import MlflowRegistry, project_version

    return project_version(MlflowRegistry(cfg, home), cfg, model_ref).version


class Measured(StrEnum):
    """What `launchbay measure` can measure."""

    bentoml = "bentoml"
    lean = "lean"
    edge = "edge"


@app.command()
def measure(
    model_ref: ModelRefArg,
    config: ConfigOpt = None,
    seconds: Annotated[float, typer.Option(help="Seconds of load per concurrency level.")] = 5.0,
    runtime: Annotated[
        Measured | None,
        typer.Option(
            "--runtime",
            help="bentoml, lean (a server under load) or edge (the edge bundle's local calls); "
            "default: serving.runtime.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure a version as a server (cold start, p50/p95/p99 at 1/4/8 concurrent, memory, size) or
    as an edge bundle (size, cold start, one local call's latency)."""
    from launchbay.rollout import measure as m
    from launchbay.rollout.local.clients import sample_rows

    cfg = load_config(config)
    home = Home.resolve(cfg.source).ensure()
    version = _version(cfg, home, model_ref)
    rows = sample_rows(cfg.resolve_path(cfg.data.path), list(cfg.data.features), n=200)
    chosen = runtime.value if runtime else cfg.serving.server
    if chosen == "edge":
        with out.status(f"measuring {cfg.model.name} version {version}'s edge bundle"):
            facts = m.measure_edge(cfg, home, version, rows)
        if as_json:
            out.print_json(
                json.dumps({"model": cfg.model.name, "version": version, "runtime": "edge", **facts})
            )
            return
        out.print(
            f"{cfg.model.name} v{version} edge bundle: {facts['bundle_mb']:.3f} MB "
            f"(+{facts['dependencies_mb']:.0f} MB of onnxruntime, numpy, cryptography); a local call "
            f"p50 {facts['p50_ms']:.3f} ms, p95 {facts['p95_ms']:.3f} ms; cold start (verify, load, "
            f"answer) {facts['cold_start_s']:.2f}s"
        )
        return
    with out.status(f"measuring {cfg.model.name} version {version} on {chosen} (server start, then load)"):
        result = m.measure(cfg, home, version, rows, seconds, chosen)
    if as_json:
        out.print_json(json.dumps(result.to_dict()))
        return
    table = Table(
        title=f"{cfg.model.name} v{version} on {result.runtime}: cold start {result.cold_start_s:.2f}s, "
        f"{result.memory_mb:.0f} MB resident, package {result.package_mb:.1f} MB"
    )
    for col in ("concurrency", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors"):
        table.add_column(col, justify="right")
    for lv in result.levels:
        table.add_row(
            str(lv.concurrency),
            f"{lv.rps:.0f}",
            f"{lv.p50_ms:.1f}",
            f"{lv.p95_ms:.1f}",
            f"{lv.p99_ms:.1f}",
            str(lv.errors),
        )
    out.print(table)
    slo = f"{result.slo_p95_ms:g} ms"
    out.print(f"highest throughput within the p95 SLO ({slo}): {result.max_rps_within_slo:.0f} req/s")


def _facts(measured: Any) -> Any:
    """What the cost model needs of one runtime's measurements."""
    from launchbay.rollout import advise as adv

    level1 = measured.levels[0]
    return adv.ServingProfile(
        cold_start_s=measured.cold_start_s,
        p50_ms=level1.p50_ms,
        p95_ms=level1.p95_ms,
        max_rps=max(measured.max_rps_within_slo, 1e-6),
        memory_mb=measured.memory_mb,
        package_mb=measured.package_mb,
    )


def _profile(traffic: Path | None, flags: dict[str, float | None]) -> Any:
    from launchbay.rollout.advise import TrafficProfile

    doc: dict[str, Any] = {}
    if traffic is not None:
        try:
            doc = yaml.safe_load(traffic.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise UsageError(f"--traffic {traffic}: cannot read it: {exc}") from None
        if not isinstance(doc, dict):
            raise UsageError(f"--traffic {traffic}: expected a mapping of requests_per_day, peak_rps, ...")
    doc.update({k: v for k, v in flags.items() if v is not None})
    try:
        return TrafficProfile(**doc)
    except TypeError as exc:
        raise UsageError(
            f"traffic profile: {exc} (keys: requests_per_day, peak_rps, idle_share, bursts_per_day)"
        ) from None
    except ValueError as exc:
        raise UsageError(f"traffic profile: {exc}") from None


@app.command()
def advise(
    model_ref: Annotated[str, typer.Argument(metavar="MODEL@REF", help="The measured version.")] = "",
    config: ConfigOpt = None,
    traffic: Annotated[Path | None, typer.Option(help="YAML traffic profile (keys as the flags).")] = None,
    requests_per_day: Annotated[float | None, typer.Option(help="Requests per day.")] = None,
    peak_rps: Annotated[float | None, typer.Option(help="Peak requests per second.")] = None,
    idle_share: Annotated[float | None, typer.Option(help="Share of the day with no traffic (0-1).")] = None,
    bursts_per_day: Annotated[
        float | None, typer.Option(help="Times a day traffic resumes after idleness.")
    ] = None,
    plot: Annotated[Path | None, typer.Option(help="Write a PNG of monthly cost against traffic.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Compare always-on and autoscaled Kubernetes, Knative/Cloud Run and functions for this model."""
    from launchbay.rollout import advise as adv
    from launchbay.rollout import measure as m

    cfg = load_config(config)
    home = Home.resolve(cfg.source)
    version = _version(cfg, home, model_ref or f"{cfg.model.name}@champion")
    measured = {r: m.load(home, cfg.model.name, version, r) for r in ("bentoml", "lean")}
    server = measured["bentoml"] or measured["lean"]
    if server is None:
        raise UsageError(
            f"{cfg.model.name} version {version} has no measurements: run "
            f"`launchbay measure {cfg.model.name}@{version}` first"
        )
    profile = _profile(
        traffic,
        {
            "requests_per_day": requests_per_day,
            "peak_rps": peak_rps,
            "idle_share": idle_share,
            "bursts_per_day": bursts_per_day,
        },
    )
    facts = _facts(server)
    lean = _facts(measured["lean"]) if measured["lean"] is not None else None
    stored_edge = m.load_edge(home, cfg.model.name, version)
    edge_facts = adv.EdgeFacts(**stored_edge) if stored_edge is not None else None
    prices = adv.Prices(**cfg.advise.prices.given())
    advice = adv.advise(facts, profile, cfg.rollout.slo.p95_latency_ms, prices, lean, edge_facts)
    volumes = [10 ** (k / 4) for k in range(8, 41)]  # 100 .. 1e10 requests a day
    cross = adv.crossovers(facts, profile, prices, volumes)
    if plot is not None:
        from launchbay.rollout.advise_plot import cost_plot

        cost_plot(facts, profile, prices, volumes, cross, plot)
    if as_json:
        doc = {
            **advice.to_dict(),
            "version": version,
            "profile": profile.__dict__,
            "crossovers": cross,
            "prices_source": adv.DEFAULT_PRICES_SOURCE,
            "prices": prices.__dict__,
        }
        out.print_json(json.dumps(doc))
        return
    table = Table(
        title=f"{cfg.model.name} v{version}: {profile.requests_per_day:,.0f} requests/day, "
        f"peak {profile.peak_rps:g} req/s, idle {100 * profile.idle_share:.0f}%"
    )
    table.add_column("option", no_wrap=True)  # kubernetes-always-on vs -autoscaled: never cut
    for col in ("p95 ms", "instances at peak", "$ per 1,000", "$ per month", "verdict"):
        table.add_column(col, overflow="fold")
    for o in advice.options:
        verdict = "recommended" if o.name == advice.recommended else ("ok" if o.viable else "ruled out")
        table.add_row(
            o.name,
            f"{o.p95_ms:,.0f}",
            str(o.instances_at_peak),
            f"{o.cost_per_1000:.6f}",
            f"{o.monthly_cost:,.2f}",
            verdict,
        )
    out.print(table)
    for reason in advice.reasons:
        out.print(f"- {reason}")
    for v, a, b in cross:
        out.print(f"- around {v:,.0f} requests/day the cheapest option changes from {a} to {b}")
    out.print(f"[dim]prices: {adv.DEFAULT_PRICES_SOURCE}[/]")
    if plot is not None:
        out.print(f"plot: {plot}")
