"""A release's timelines: p95 latency and error rate of candidate and stable, the traffic weight
the candidate was given, and shadow agreement and score shift.

Measured lines come from Prometheus over the release's lifetime, with the same PromQL the
analysis runs (`metrics.queries`), so the chart shows what the controller judged. When Prometheus
cannot answer (down, its retention gone), the points come from the analyses recorded in the
ledger instead, and the chart says so. The traffic weight is the ledger's own word: a step line
from the events that moved the release.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from launchbay.config.rollout import QueriesSection
from launchbay.rollout.engine.phases import Phase
from launchbay.rollout.engine.plan import Shadow
from launchbay.rollout.engine.release import Event, Release
from launchbay.rollout.metrics.base import Series
from launchbay.rollout.metrics.queries import shadow_queries, version_queries

SHADOW_TITLE = "shadow: disagreement and score shift vs stable"

MAX_POINTS = 120
"""Points per line at most: a long release is summarised, not drawn at scrape resolution."""


@dataclass
class Line:
    """One series of a chart."""

    label: str
    points: list[tuple[float, float]]
    kind: str = "candidate"
    """candidate | stable | shadow | weight: how it is drawn (colour, dashes)."""
    step: bool = False
    """Drawn as a step line (a value that holds until the next point)."""


@dataclass
class Chart:
    """A timeline of one quantity."""

    key: str
    title: str
    unit: str
    lines: list[Line] = field(default_factory=list)
    limit: float | None = None
    """The configured limit, drawn as a rule."""
    source: str = "prometheus"
    """prometheus | recorded | ledger: where the points came from."""
    note: str = ""


class RangeSource(Protocol):
    """What can evaluate a query over a time range (`PrometheusProvider.query_range`)."""

    def query_range(self, query: str, start: float, end: float, step: float) -> Series:
        """The query's points from `start` to `end`, one per `step` seconds (never raises)."""
        ...


def span(release: Release, events: list[Event], now: float | None = None) -> tuple[float, float]:
    """From the release's creation to now (while it runs) or a little after it ended."""
    now = time.time() if now is None else now
    if release.phase.live or release.phase is Phase.PENDING:
        return release.created_at, now
    ended = max((e.at for e in events if e.phase_to == release.phase.value), default=release.updated_at)
    return release.created_at, min(now, ended + 5.0)


def weights(release: Release, events: list[Event], end: float) -> Chart:
    """The share of real traffic the candidate was given, step by step, from the ledger."""
    points: list[tuple[float, float]] = []
    mirror: list[tuple[float, float]] = []
    for e in events:
        if e.phase_to is None or (e.phase_from == e.phase_to and e.action != "step"):
            continue
        phase = Phase(e.phase_to)
        index = int(e.evidence.get("step_index", release.step_index))
        weight, mirrored = 0.0, 0.0
        if phase is Phase.PROMOTED:
            weight = 100.0
        elif phase.live and phase is not Phase.VERIFIED and index < len(release.plan):
            traffic = release.plan.traffic(index)
            weight, mirrored = float(traffic.canary_weight), 100.0 if traffic.mirror else 0.0
        points.append((e.at, weight))
        mirror.append((e.at, mirrored))
    if points:
        points.append((end, points[-1][1]))
        mirror.append((end, mirror[-1][1]))
    chart = Chart("weight", "traffic to the candidate", "%", source="ledger")
    chart.lines.append(Line(f"v{release.version} real traffic", points, "weight", step=True))
    if any(v for _, v in mirror):
        chart.lines.append(Line(f"v{release.version} mirrored copy", mirror, "shadow", step=True))
    return chart


def _step(start: float, end: float) -> tuple[float, float]:
    """The step between points and the window each point looks back over."""
    step = max(1.0, (end - start) / MAX_POINTS)
    return step, max(2 * step, 4.0)  # rate()/increase() need a few scrapes in the window


def measured(
    source: RangeSource | None,
    release: Release,
    events: list[Event],
    templates: QueriesSection,
    slo: tuple[float, float],
    now: float | None = None,
) -> list[Chart]:
    """Latency, error rate (and in shadow, agreement and score shift) over the release's life.

    `slo`: (p95 limit in ms, error rate limit), drawn as rules.
    """
    samples = [s for e in events for s in e.evidence.get("samples", [])]
    if samples and not release.phase.live:
        # Ended: what the controller measured, as the ledger keeps it (Prometheus forgets).
        return from_samples(release, samples, slo, "as the controller measured them, recorded in the ledger")
    start, end = span(release, events, now)
    step, window = _step(start, end)
    stable = release.stable_version
    wanted: dict[tuple[str, str], tuple[str, str]] = {}  # (chart, line) -> (kind, query)
    versions = [(release.version, "primary", "candidate"), (release.version, "shadow", "shadow")]
    if stable:
        versions.append((stable, "primary", "stable"))
    for version, role, kind in versions:
        q = version_queries(version, role, window, templates)
        label = f"v{version}" + (" mirrored" if role == "shadow" else "")
        wanted[("p95", label)] = (kind, q["p95_ms"])
        wanted[("errors", label)] = (kind, q["error_rate"])
    has_shadow = stable is not None and any(isinstance(s, Shadow) for s in release.plan.steps)
    if has_shadow and stable is not None:
        sq = shadow_queries(stable, release.version, window, templates)
        wanted[("shadow", "disagreement")] = ("shadow", sq["disagreement"])
        wanted[("shadow", "score shift")] = ("candidate", sq["score_shift"])
    results: dict[tuple[str, str], Series] = {}
    if source is not None:
        with ThreadPoolExecutor(max_workers=len(wanted)) as pool:
            futures = {
                k: pool.submit(source.query_range, q, start, end, step) for k, (_, q) in wanted.items()
            }
            results = {k: f.result() for k, f in futures.items()}
    charts = {
        "p95": Chart("p95", "p95 latency", "ms", limit=slo[0]),
        "errors": Chart("errors", "error rate", "", limit=slo[1]),
    }
    if has_shadow:
        charts["shadow"] = Chart("shadow", SHADOW_TITLE, "")
    problems = [r.error for r in results.values() if r.error]
    for (chart, label), (kind, _) in wanted.items():
        series = results.get((chart, label))
        points = list(series.points) if series is not None else []
        if points:
            charts[chart].lines.append(Line(label, points, kind))
    if source is None or (problems and not any(c.lines for c in charts.values())):
        why = problems[0] if problems else "no Prometheus to ask"
        if samples:
            return from_samples(release, samples, slo, f"recorded in the ledger ({why})")
        _recorded(charts, release, events, why)
    return list(charts.values())


_SAMPLED = (
    ("p95", "c_p95", "candidate"), ("p95", "s_p95", "stable"),
    ("errors", "c_err", "candidate"), ("errors", "s_err", "stable"),
    ("shadow", "disagreement", "shadow"), ("shadow", "score_shift", "candidate"),
)  # fmt: skip
"""(chart, sample key, line kind) of the controller's recorded measurements (`rollout.samples`)."""


def from_samples(
    release: Release, samples: list[dict[str, Any]], slo: tuple[float, float], note: str
) -> list[Chart]:
    """The latency, error and shadow charts from the controller's recorded measurements."""
    charts = {
        "p95": Chart("p95", "p95 latency", "ms", limit=slo[0], source="recorded", note=note),
        "errors": Chart("errors", "error rate", "", limit=slo[1], source="recorded", note=note),
        "shadow": Chart("shadow", SHADOW_TITLE, "", source="recorded", note=note),
    }
    lines: dict[tuple[str, str], Line] = {}
    for one in sorted(samples, key=lambda x: x["t"]):
        for chart, key, kind in _SAMPLED:
            if key not in one:
                continue
            if key.startswith("s_"):
                label = f"v{release.stable_version}"
            elif key.startswith("c_"):
                label = f"v{release.version}" + (" mirrored" if one.get("role") == "shadow" else "")
                kind = "shadow" if one.get("role") == "shadow" else kind
            else:
                label = key.replace("_", " ")
            line = lines.setdefault((chart, label), Line(label, [], kind))
            line.points.append((float(one["t"]), float(one[key])))
    for (chart, _), line in lines.items():
        charts[chart].lines.append(line)
    if not charts["shadow"].lines:
        del charts["shadow"]
    return list(charts.values())


_RECORDED = {
    "candidate p95 latency": "p95",
    "candidate error rate": "errors",
    "candidate error rate (mirrored)": "errors",
    "prediction disagreement with stable": "shadow",
    "mean score shift vs stable": "shadow",
}
"""The analysis checks whose observed values are points of a chart."""


def _recorded(charts: dict[str, Chart], release: Release, events: list[Event], why: str) -> None:
    """Fill the charts from the analyses the ledger recorded (fewer points: one per verdict change)."""
    lines: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for e in events:
        analysis = e.evidence if e.action == "analysis" else e.evidence.get("analysis")
        if not isinstance(analysis, dict):
            continue
        for c in analysis.get("checks", []):
            chart = _RECORDED.get(c.get("check", ""))
            if chart is None or not isinstance(c.get("observed"), int | float):
                continue
            lines.setdefault((chart, c["check"]), []).append((e.at, float(c["observed"])))
    for each in charts.values():
        each.source = "recorded"
        each.note = f"from the analyses recorded in the ledger ({why})"
    for (chart, label), points in lines.items():
        if chart in charts:
            charts[chart].lines.append(Line(f"v{release.version} {label}", points, "candidate"))


def monitored(timeline: list[dict[str, Any]]) -> list[Chart]:
    """The production monitor's timelines for the version it watches: the evidence of drift and of a
    drop in live performance (log10 of the e-detectors' statistics), each against its alarm level."""
    if not timeline:
        return []
    level = float(timeline[-1]["level"])
    note = "log10 of the evidence; an alarm at the rule (its false-alarm rate is stated on the monitor)"
    drift = Chart(
        "monitor-drift", "live drift (inputs and answers)", "", limit=level, source="recorded", note=note
    )
    drift.lines.append(Line("drift", [(p["at"], max(p["drift"], 0.0)) for p in timeline], "candidate"))
    charts = [drift]
    losses = [(p["at"], max(p["loss"], 0.0)) for p in timeline if p.get("loss") is not None]
    if losses:
        title = "live performance (labelled answers)"
        live = Chart("monitor-loss", title, "", limit=level, source="recorded", note=note)
        live.lines.append(Line("errors over offline", losses, "stable"))
        charts.append(live)
    return charts
