"""PromQL over the gateway's metrics: what the analysis of a step measures, per version.

Errors are 5xx answers (a 4xx is the client's mistake, not the model's). Latency is the time the
gateway waited for the version's server, so both versions are measured the same way, by the same
process, over the same window.
"""

from __future__ import annotations

from rollout.analysis import ShadowStats, VersionStats
from rollout.metrics.base import MetricsProvider

REQUESTS = "launchbay_gateway_requests_total"
DURATION = "launchbay_gateway_request_duration_seconds"


def _sel(version: str, role: str, extra: str = "") -> str:
    return f'{{version="{version}",role="{role}"{extra}}}'


def version_queries(version: str, role: str, window: float) -> dict[str, str]:
    """Requests, error rate and p95 (ms) of one version in one role over the last `window` s."""
    w = f"[{max(round(window), 2)}s]"
    sel = _sel(version, role)
    errors = _sel(version, role, ',code="5xx"')
    return {
        "requests": f"sum(increase({REQUESTS}{sel}{w}))",
        "error_rate": (
            f"sum(increase({REQUESTS}{errors}{w}) or vector(0)) / sum(increase({REQUESTS}{sel}{w}))"
        ),
        "p95_ms": (f"histogram_quantile(0.95, sum by (le) (increase({DURATION}_bucket{sel}{w}))) * 1000"),
    }


def shadow_queries(stable: str, candidate: str, window: float) -> dict[str, str]:
    """Rows compared, disagreement share and mean score shift between two versions in shadow."""
    w = f"[{max(round(window), 2)}s]"
    sel = f'{{stable="{stable}",candidate="{candidate}"}}'
    compared = f"sum(increase(launchbay_shadow_compared_rows_total{sel}{w}))"
    return {
        "compared": compared,
        "disagreement": (
            f"sum(increase(launchbay_shadow_disagreement_rows_total{sel}{w}) or vector(0)) / {compared}"
        ),
        "score_shift": (
            f"sum(increase(launchbay_shadow_score_diff_sum{sel}{w}))"
            f" / sum(increase(launchbay_shadow_score_diff_count{sel}{w}))"
        ),
    }


def measure_version(provider: MetricsProvider, version: str, role: str, window: float) -> VersionStats:
    """Query one version's numbers."""
    q = version_queries(version, role, window)
    return VersionStats(
        requests=provider.query(q["requests"]),
        error_rate=provider.query(q["error_rate"]),
        p95_ms=provider.query(q["p95_ms"]),
    )


def measure_shadow(provider: MetricsProvider, stable: str, candidate: str, window: float) -> ShadowStats:
    """Query the comparison of mirrored answers."""
    q = shadow_queries(stable, candidate, window)
    return ShadowStats(
        compared=provider.query(q["compared"]),
        disagreement=provider.query(q["disagreement"]),
        score_shift=provider.query(q["score_shift"]),
    )
