"""Serverless or Kubernetes, decided from this model's measurements and a traffic profile.

For each deployment option the model computes what it would cost and how fast it would answer:

* `kubernetes-always-on`: enough replicas for the peak, all the time;
* `kubernetes-autoscaled`: replicas follow traffic, never fewer than one;
* `knative-scale-to-zero` (Cloud Run-like): billed only while instances handle requests (each
  rounded up to 100 ms), per-request fee, cold starts when traffic resumes after idleness;
* `function` (Lambda-like): one request per instance, billed per GB-second and per request,
  cold starts, hard limits on memory and package size;
* `edge`: the edge bundle on the caller's own device -- no network hop, no cloud bill, limited
  by the bundle's size (and by the model having an ONNX variant). It is listed, not recommended:
  running on the caller's device is a product decision, not a cheaper hosting of the same thing.

Serverless options are judged on the runtime that would serve them: the lean runtime (its cold
start, latency and package), when it was measured; the always-on options on the server's.

Cost per 1,000 inferences is `(1000 x X) / Y`, X the hourly cost of one instance running at the
SLO's throughput, Y the inferences per hour it serves there. Monthly cost comes from the profile.
The expected p95 includes cold starts when they are frequent enough to reach the 95th
percentile. Every number is a pure function of the inputs, so the tests check them by hand.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

DAY = 86_400.0
MONTH_DAYS = 30.0


@dataclass(frozen=True)
class ServingProfile:
    """What the measurement of one version found (one instance, on the machine that ran it)."""

    cold_start_s: float
    p50_ms: float
    p95_ms: float
    max_rps: float
    """Highest throughput one instance sustains with p95 within the SLO."""
    memory_mb: float
    package_mb: float
    cpu: float = 1.0
    """vCPUs an instance is given (priced per vCPU)."""


@dataclass(frozen=True)
class TrafficProfile:
    """How a model is called."""

    requests_per_day: float
    peak_rps: float
    idle_share: float = 0.0
    """Share of the day with no traffic at all (0..1)."""
    bursts_per_day: float = 0.0
    """How many times a day traffic resumes after idleness (each can meet a cold start)."""

    def __post_init__(self) -> None:
        if self.requests_per_day < 0 or self.peak_rps <= 0:
            raise ValueError("requests_per_day must be >= 0 and peak_rps > 0")
        if not 0 <= self.idle_share < 1:
            raise ValueError(f"idle_share must be within [0, 1), got {self.idle_share}")

    @property
    def active_seconds(self) -> float:
        """Seconds a day with traffic."""
        return DAY * (1 - self.idle_share)

    @property
    def active_rps(self) -> float:
        """Mean request rate while there is traffic."""
        return self.requests_per_day / self.active_seconds


@dataclass(frozen=True)
class Prices:
    """List prices in USD. Defaults: see `DEFAULT_PRICES_SOURCE`."""

    k8s_vcpu_hour: float = 0.0445
    k8s_gb_hour: float = 0.0049225
    run_vcpu_second: float = 0.000024
    run_gb_second: float = 0.0000025
    run_per_million: float = 0.40
    fn_gb_second: float = 0.0000166667
    fn_per_million: float = 0.20
    fn_max_memory_mb: float = 10_240
    fn_max_package_mb: float = 10_240
    """10 GB as a container image (a .zip package is limited to 250 MB unzipped)."""
    edge_max_bundle_mb: float = 200.0
    """The largest bundle (with its installed dependencies) a device takes."""


@dataclass(frozen=True)
class EdgeFacts:
    """The edge bundle of a version, as measured on this machine (no network in the path)."""

    bundle_mb: float
    """The bundle itself (ONNX graph, signed model files, runtime code)."""
    dependencies_mb: float
    """onnxruntime, numpy and cryptography installed."""
    p50_ms: float
    p95_ms: float
    """One local call, one row."""
    cold_start_s: float


DEFAULT_PRICES_SOURCE = (
    "Kubernetes: GKE Autopilot general-purpose pods, us-central1 (cloud.google.com/kubernetes-engine/"
    "pricing); Knative: Cloud Run tier 1, CPU allocated during requests (cloud.google.com/run/pricing: "
    "$0.000024/vCPU-s, $0.0000025/GiB-s, $0.40/M requests); function: AWS Lambda x86 us-east-1 "
    "(aws.amazon.com/lambda/pricing: $0.0000166667/GB-s, $0.20/M requests; limits 10,240 MB memory, "
    "10 GB container image). Read from stored copies of those pages on 2026-11-22; free tiers ignored. "
    "Check current prices for your region and put them in launchbay.yaml (advise.prices)."
)

COLD_P95_SHARE = 0.05
"""Cold starts reach the p95 when at least this share of requests meets one."""


@dataclass
class Option:
    """One deployment option's figures."""

    name: str
    p95_ms: float
    instances_at_peak: int
    cost_per_1000: float
    monthly_cost: float
    cold_start_share: float = 0.0
    ruled_out: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def viable(self) -> bool:
        """Not ruled out by a hard limit or the latency SLO."""
        return not self.ruled_out

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {**asdict(self), "viable": self.viable}


def per_1000(hourly_cost: float, inferences_per_hour: float) -> float:
    """The cost of 1,000 inferences: (1000 x hourly cost) / inferences per hour at the SLO."""
    return 1000 * hourly_cost / inferences_per_hour


def _instance_hour(m: ServingProfile, p: Prices) -> float:
    return m.cpu * p.k8s_vcpu_hour + (m.memory_mb / 1024) * p.k8s_gb_hour


def _cold(m: ServingProfile, share: float, p95_ms: float) -> float:
    """p95 with cold starts: a cold request waits the cold start on top of its answer."""
    return m.cold_start_s * 1000 + m.p50_ms if share >= COLD_P95_SHARE else p95_ms


def kubernetes_always_on(m: ServingProfile, t: TrafficProfile, p: Prices) -> Option:
    """Replicas for the peak, all day."""
    n = max(1, math.ceil(t.peak_rps / m.max_rps))
    hourly = _instance_hour(m, p)
    return Option(
        "kubernetes-always-on",
        p95_ms=m.p95_ms,
        instances_at_peak=n,
        cost_per_1000=per_1000(hourly, m.max_rps * 3600),
        monthly_cost=n * hourly * 24 * MONTH_DAYS,
        notes=[f"{n} replica(s) for {t.peak_rps:g} req/s at peak, running all day"],
    )


def kubernetes_autoscaled(m: ServingProfile, t: TrafficProfile, p: Prices) -> Option:
    """Replicas follow the mean active load; one replica stays up while idle."""
    peak = max(1, math.ceil(t.peak_rps / m.max_rps))
    active = max(1, math.ceil(t.active_rps / m.max_rps))
    hours = active * (t.active_seconds / 3600) + 1 * (DAY - t.active_seconds) / 3600
    hourly = _instance_hour(m, p)
    return Option(
        "kubernetes-autoscaled",
        p95_ms=m.p95_ms,
        instances_at_peak=peak,
        cost_per_1000=per_1000(hourly, m.max_rps * 3600),
        monthly_cost=hours * hourly * MONTH_DAYS,
        notes=[f"about {hours:.1f} replica-hours a day (min 1)"],
    )


def _bursts_share(t: TrafficProfile, instances: int) -> float:
    if t.requests_per_day == 0:
        return 0.0
    return min(1.0, t.bursts_per_day * instances / t.requests_per_day)


def knative_scale_to_zero(m: ServingProfile, t: TrafficProfile, p: Prices) -> Option:
    """Billed while instances serve (CPU during requests), per request; zero when idle."""
    peak = max(1, math.ceil(t.peak_rps / m.max_rps))
    active = max(1, math.ceil(t.active_rps / m.max_rps))
    second = m.cpu * p.run_vcpu_second + (m.memory_mb / 1024) * p.run_gb_second
    busy_hourly = 3600 * second + m.max_rps * 3600 * p.run_per_million / 1e6
    # Billed while handling at least one request, each rounded up to 100 ms: busy instances when
    # traffic is dense, the requests' own (rounded) time when it is sparse.
    instance_seconds = min(active * t.active_seconds, t.requests_per_day * max(m.p50_ms / 1000, 0.1))
    daily = instance_seconds * second + t.requests_per_day * p.run_per_million / 1e6
    share = _bursts_share(t, active)
    return Option(
        "knative-scale-to-zero",
        p95_ms=_cold(m, share, m.p95_ms),
        instances_at_peak=peak,
        cost_per_1000=per_1000(busy_hourly, m.max_rps * 3600),
        monthly_cost=daily * MONTH_DAYS,
        cold_start_share=share,
        notes=[f"cold start {m.cold_start_s:.1f}s for {100 * share:.2f}% of requests"],
    )


def function(m: ServingProfile, t: TrafficProfile, p: Prices) -> Option:
    """One request per instance at a time; GB-seconds of each request plus a per-request fee."""
    memory_gb = max(128, math.ceil(m.memory_mb / 64) * 64) / 1024
    duration = math.ceil(m.p50_ms) / 1000
    per_request = duration * memory_gb * p.fn_gb_second + p.fn_per_million / 1e6
    rate = 1 / duration  # requests one instance answers per second, one at a time
    peak = max(1, math.ceil(t.peak_rps * duration))  # Little's law: concurrency at the peak
    active = max(1, math.ceil(t.active_rps * duration))
    share = _bursts_share(t, active)
    option = Option(
        "function",
        p95_ms=_cold(m, share, m.p95_ms),
        instances_at_peak=peak,
        cost_per_1000=per_1000(per_request * rate * 3600, rate * 3600),
        monthly_cost=t.requests_per_day * per_request * MONTH_DAYS,
        cold_start_share=share,
        notes=[f"{memory_gb * 1024:.0f} MB, {duration * 1000:.0f} ms billed per request"],
    )
    if m.memory_mb > p.fn_max_memory_mb:
        option.ruled_out.append(f"needs {m.memory_mb:.0f} MB, above the {p.fn_max_memory_mb:.0f} MB limit")
    if m.package_mb > p.fn_max_package_mb:
        option.ruled_out.append(
            f"package {m.package_mb:.0f} MB, above the {p.fn_max_package_mb:.0f} MB limit"
        )
    return option


OPTIONS = (kubernetes_always_on, kubernetes_autoscaled, knative_scale_to_zero, function)
SERVERLESS = {"knative-scale-to-zero", "function"}
"""The options a scale-to-zero runtime serves (judged on the lean runtime's measurements)."""


def edge(e: EdgeFacts | None, p: Prices) -> Option:
    """The edge bundle on the caller's device: its local latency and size; no cloud cost."""
    if e is None:
        why = "no ONNX variant measured: `launchbay measure MODEL@REF --runtime edge`"
        return Option("edge", float("nan"), 0, 0.0, 0.0, ruled_out=[why])
    size = e.bundle_mb + e.dependencies_mb
    option = Option(
        "edge",
        p95_ms=e.p95_ms,
        instances_at_peak=0,
        cost_per_1000=0.0,
        monthly_cost=0.0,
        notes=[
            f"on the caller's device: {e.p95_ms:.2f} ms p95 per call with no network hop, "
            f"{size:.0f} MB with its dependencies, cold start {e.cold_start_s:.2f}s"
        ],
    )
    if size > p.edge_max_bundle_mb:
        option.ruled_out.append(
            f"{size:.0f} MB with its dependencies, above the {p.edge_max_bundle_mb:.0f} MB limit"
        )
    return option


@dataclass
class Advice:
    """Every option's figures and the recommendation with its reasons."""

    options: list[Option]
    recommended: str | None
    reasons: list[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "options": [o.to_dict() for o in self.options],
            "recommended": self.recommended,
            "reasons": self.reasons,
        }


def advise(
    m: ServingProfile,
    t: TrafficProfile,
    p95_slo_ms: float,
    prices: Prices | None = None,
    lean: ServingProfile | None = None,
    edge_facts: EdgeFacts | None = None,
) -> Advice:
    """Compute every option and recommend the cheapest one that meets the SLO and the limits.

    Args:
        m: the server's measurements (the always-on options; serverless ones too without `lean`).
        lean: the lean runtime's measurements: what a scale-to-zero target or a function runs.
        edge_facts: the edge bundle's measurements (the `edge` option; never the recommendation).
    """
    p = prices or Prices()
    options = [
        make(lean if lean is not None and make(m, t, p).name in SERVERLESS else m, t, p) for make in OPTIONS
    ]
    for o in options:
        if o.p95_ms > p95_slo_ms:
            o.ruled_out.append(f"expected p95 {o.p95_ms:.0f} ms is above the {p95_slo_ms:g} ms SLO")
    viable = sorted((o for o in options if o.viable), key=lambda o: o.monthly_cost)
    device = edge(edge_facts, p)
    options.append(device)
    if not viable:
        return Advice(options, None, ["no option meets the SLO and the limits: see each option's reasons"])
    best = viable[0]
    reasons = [
        f"cheapest option that meets the p95 SLO of {p95_slo_ms:g} ms: "
        f"${best.monthly_cost:,.2f}/month, expected p95 {best.p95_ms:.0f} ms"
    ]
    if len(viable) > 1:
        runner = viable[1]
        reasons.append(
            f"next: {runner.name} at ${runner.monthly_cost:,.2f}/month "
            f"({runner.monthly_cost / max(best.monthly_cost, 1e-9):.1f}x)"
        )
    if lean is not None:
        reasons.append(
            f"serverless options judged on the lean runtime: cold start {lean.cold_start_s:.2f}s "
            f"(the server's: {m.cold_start_s:.2f}s)"
        )
    reasons += [f"{o.name} ruled out: {'; '.join(o.ruled_out)}" for o in options if not o.viable]
    if device.viable:
        reasons.append(f"edge (not a hosting option): {device.notes[0]}")
    return Advice(options, best.name, reasons)


def crossovers(
    m: ServingProfile, t: TrafficProfile, p: Prices, volumes: list[float]
) -> list[tuple[float, str, str]]:
    """Traffic volumes (requests/day) where the cheapest option changes, scaling the profile."""
    found: list[tuple[float, str, str]] = []
    previous: str | None = None
    for v in volumes:
        scaled = scale(t, v)
        cheapest = min((make(m, scaled, p) for make in OPTIONS), key=lambda o: o.monthly_cost).name
        if previous is not None and cheapest != previous:
            found.append((v, previous, cheapest))
        previous = cheapest
    return found


def scale(t: TrafficProfile, requests_per_day: float) -> TrafficProfile:
    """The same shape of traffic at another volume (peak scaled in proportion)."""
    factor = requests_per_day / t.requests_per_day if t.requests_per_day else 1.0
    return TrafficProfile(
        requests_per_day=requests_per_day,
        peak_rps=max(t.peak_rps * factor, 1e-6),
        idle_share=t.idle_share,
        bursts_per_day=t.bursts_per_day,
    )
