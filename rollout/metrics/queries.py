"""PromQL of the analysis: what each step measures, per version.

The defaults read launchbay's gateway metrics (the local target). Errors are 5xx answers (a 4xx
is the client's mistake, not the model's). Latency is the time the gateway waited for the
version's server, so both versions are measured the same way, by the same process, over the same
window. In a cluster the numbers come from elsewhere (the service's own metrics, a mesh):
`rollout.queries` in launchbay.yaml replaces any of them with a template (like Flagger's metric
templates) filled with {version} {role} {window} -- and {stable} {candidate} in shadow.
"""

from __future__ import annotations

from launchbay.config import QueriesSection
from launchbay.rollout.metrics.base import MetricsProvider, ShadowStats, VersionStats

REQUESTS = "launchbay_gateway_requests_total"
DURATION = "launchbay_gateway_request_duration_seconds"
DEFAULT = QueriesSection()


_PREDICT = 'endpoint="/predict",version="{version}"'
CLUSTER = QueriesSection(
    requests=f"sum(increase(bentoml_service_request_total{{{{{_PREDICT}}}}}[{{window}}]))",
    error_rate=(
        f'sum(increase(bentoml_service_request_total{{{{{_PREDICT},http_response_code=~"5.."}}}}[{{window}}])'
        f" or vector(0)) / sum(increase(bentoml_service_request_total{{{{{_PREDICT}}}}}[{{window}}]))"
    ),
    p95_ms=(
        "histogram_quantile(0.95, sum by (le) (increase("
        f"bentoml_service_request_duration_seconds_bucket{{{{{_PREDICT}}}}}[{{window}}]))) * 1000"
    ),
    # A cluster's gateway discards mirrored answers, so shadow is compared by population over the
    # same window: the share of positive predictions and the mean score of each version, from the
    # service's own metrics. Row-by-row comparison needs launchbay's gateway (the local target).
    compared='sum(increase(launchbay_predictions_total{{version="{candidate}"}}[{window}]))',
    disagreement=(
        'abs(sum(increase(launchbay_predictions_total{{version="{candidate}",predicted_class="1"}}[{window}]))'
        ' / sum(increase(launchbay_predictions_total{{version="{candidate}"}}[{window}]))'
        ' - sum(increase(launchbay_predictions_total{{version="{stable}",predicted_class="1"}}[{window}]))'
        ' / sum(increase(launchbay_predictions_total{{version="{stable}"}}[{window}])))'
    ),
    score_shift=(
        'abs(sum(increase(launchbay_prediction_score_sum{{version="{candidate}"}}[{window}]))'
        ' / sum(increase(launchbay_prediction_score_count{{version="{candidate}"}}[{window}]))'
        ' - sum(increase(launchbay_prediction_score_sum{{version="{stable}"}}[{window}]))'
        ' / sum(increase(launchbay_prediction_score_count{{version="{stable}"}}[{window}])))'
    ),
)
"""Defaults for cluster targets: the model service's own metrics, `version` from the pod label
(see infra/prometheus/scrape.yml)."""


def templates_for(target: str, user: QueriesSection) -> QueriesSection:
    """The user's templates over the target's defaults (none for the local target: gateway metrics)."""
    if target == "local":
        return user
    return QueriesSection(**{**CLUSTER.model_dump(), **user.model_dump(exclude_none=True)})


def _sel(version: str, role: str, extra: str = "") -> str:
    return f'{{version="{version}",role="{role}"{extra}}}'


def _window(seconds: float) -> str:
    return f"{max(round(seconds), 2)}s"  # rate()/increase() need two samples: at least 2 scrapes


def _custom(templates: QueriesSection, names: tuple[str, ...], **values: str) -> dict[str, str]:
    """The user's templates among `names`, filled in."""
    return {n: t.format(**values) for n in names if (t := getattr(templates, n))}


def version_queries(
    version: str, role: str, window: float, templates: QueriesSection = DEFAULT
) -> dict[str, str]:
    """Requests, error rate and p95 (ms) of one version in one role over the last `window` s."""
    w = f"[{_window(window)}]"
    sel = _sel(version, role)
    errors = _sel(version, role, ',code="5xx"')
    default = {
        "requests": f"sum(increase({REQUESTS}{sel}{w}))",
        "error_rate": (
            f"sum(increase({REQUESTS}{errors}{w}) or vector(0)) / sum(increase({REQUESTS}{sel}{w}))"
        ),
        "p95_ms": f"histogram_quantile(0.95, sum by (le) (increase({DURATION}_bucket{sel}{w}))) * 1000",
    }
    names = ("requests", "error_rate", "p95_ms")
    return default | _custom(templates, names, version=version, role=role, window=_window(window))


def shadow_queries(
    stable: str, candidate: str, window: float, templates: QueriesSection = DEFAULT
) -> dict[str, str]:
    """Rows compared, disagreement share and mean score shift between two versions in shadow."""
    w = f"[{_window(window)}]"
    sel = f'{{stable="{stable}",candidate="{candidate}"}}'
    compared = f"sum(increase(launchbay_shadow_compared_rows_total{sel}{w}))"
    default = {
        "compared": compared,
        "disagreement": (
            f"sum(increase(launchbay_shadow_disagreement_rows_total{sel}{w}) or vector(0)) / {compared}"
        ),
        "score_shift": (
            f"sum(increase(launchbay_shadow_score_diff_sum{sel}{w}))"
            f" / sum(increase(launchbay_shadow_score_diff_count{sel}{w}))"
        ),
    }
    names = ("compared", "disagreement", "score_shift")
    return default | _custom(templates, names, stable=stable, candidate=candidate, window=_window(window))


def measure_version(
    provider: MetricsProvider, version: str, role: str, window: float, templates: QueriesSection = DEFAULT
) -> VersionStats:
    """Query one version's numbers."""
    q = version_queries(version, role, window, templates)
    return VersionStats(
        requests=provider.query(q["requests"]),
        error_rate=provider.query(q["error_rate"]),
        p95_ms=provider.query(q["p95_ms"]),
    )


def measure_shadow(
    provider: MetricsProvider,
    stable: str,
    candidate: str,
    window: float,
    templates: QueriesSection = DEFAULT,
) -> ShadowStats:
    """Query the comparison of mirrored answers."""
    q = shadow_queries(stable, candidate, window, templates)
    return ShadowStats(
        compared=provider.query(q["compared"]),
        disagreement=provider.query(q["disagreement"]),
        score_shift=provider.query(q["score_shift"]),
    )
