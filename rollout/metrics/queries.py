"""PromQL of the analysis: what each step measures, per version.

The defaults read launchbay's gateway metrics (the local target). Errors are 5xx answers (a 4xx
is the client's mistake, not the model's). Latency is the time the gateway waited for the
version's server, so both versions are measured the same way, by the same process, over the same
window. In a cluster the numbers come from elsewhere (the service's own metrics, a mesh):
`rollout.queries` in launchbay.yaml replaces any of them with a template (like Flagger's metric
templates) filled with {version} {role} {window} -- and {stable} {candidate} in shadow.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, wait

from launchbay.config.rollout import MetricSection, QueriesSection
from launchbay.rollout.metrics import names as series
from launchbay.rollout.metrics.base import Measurement, MetricsProvider, ShadowStats, VersionStats
from launchbay.serving.metric_names import PREDICTION_SCORE, PREDICTIONS, total

REQUESTS = series.total(series.REQUESTS)
DURATION = series.DURATION
_PREDICTIONS = total(PREDICTIONS)
_SCORE = PREDICTION_SCORE
DEFAULT = QueriesSection()


_SCOPE = 'namespace="{{namespace}}",model="{{model}}"'
_PREDICT = _SCOPE + ',endpoint="/predict",version="{version}"'
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
    compared="sum(increase(" + _PREDICTIONS + "{{" + _SCOPE + ',version="{candidate}"}}[{window}]))',
    disagreement=(
        "abs(sum(increase("
        + _PREDICTIONS
        + "{{"
        + _SCOPE
        + ',version="{candidate}",predicted_class="1"}}[{window}]))'
        " / sum(increase(" + _PREDICTIONS + "{{" + _SCOPE + ',version="{candidate}"}}[{window}]))'
        " - sum(increase("
        + _PREDICTIONS
        + "{{"
        + _SCOPE
        + ',version="{stable}",predicted_class="1"}}[{window}]))'
        " / sum(increase(" + _PREDICTIONS + "{{" + _SCOPE + ',version="{stable}"}}[{window}])))'
    ),
    score_shift=(
        "abs(sum(increase(" + _SCORE + "_sum{{" + _SCOPE + ',version="{candidate}"}}[{window}]))'
        " / sum(increase(" + _SCORE + "_count{{" + _SCOPE + ',version="{candidate}"}}[{window}]))'
        " - sum(increase(" + _SCORE + "_sum{{" + _SCOPE + ',version="{stable}"}}[{window}]))'
        " / sum(increase(" + _SCORE + "_count{{" + _SCOPE + ',version="{stable}"}}[{window}])))'
    ),
)
"""Defaults for cluster targets: the model service's own metrics, `model` and `version` from the pod
labels and `namespace` from the pod's (see the chart's PodMonitor and prometheus/scrape.yml):
in a cluster shared by teams, another team's version 3 is another series. `{model}` and
`{namespace}` are filled in when the controller is built."""


_FN = 'dimension_model="{{model}}",dimension_version="{version}"'
FUNCTION = QueriesSection(
    requests=f"sum(sum_over_time(aws_launchbay_requests_sum{{{{{_FN}}}}}[{{window}}]))",
    error_rate=(
        f"sum(sum_over_time(aws_launchbay_server_errors_sum{{{{{_FN}}}}}[{{window}}]) or vector(0))"
        f" / sum(sum_over_time(aws_launchbay_requests_sum{{{{{_FN}}}}}[{{window}}]))"
    ),
    p95_ms=f"max(max_over_time(aws_launchbay_latency_ms_p95{{{{{_FN}}}}}[{{window}}]))",
)
"""Defaults for the function target: the handler's own metrics (CloudWatch embedded metric format,
namespace `launchbay`, dimensions model and version), as the YACE CloudWatch exporter names them
in Prometheus. `{model}` is filled in when the controller is built."""


def templates_for(target: str, user: QueriesSection, model: str = "", namespace: str = "") -> QueriesSection:
    """The user's templates over the target's defaults (none for the local target: gateway metrics);
    `{{model}}` and `{{namespace}}` in either are the model's name and namespace."""
    if target == "local":
        return user

    def scoped(section: QueriesSection) -> dict[str, str]:
        return {k: v.replace("{{model}}", model).replace("{{namespace}}", namespace)
                for k, v in section.model_dump(exclude_none=True).items()}  # fmt: skip

    base = scoped(FUNCTION) if target == "function" else {}
    return QueriesSection(**{**scoped(CLUSTER), **base, **scoped(user)})


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
    compared = f"sum(increase({series.total(series.SHADOW_COMPARED)}{sel}{w}))"
    default = {
        "compared": compared,
        "disagreement": (
            f"sum(increase({series.total(series.SHADOW_DISAGREEMENTS)}{sel}{w}) or vector(0)) / {compared}"
        ),
        "score_shift": (
            f"sum(increase({series.SHADOW_SCORE_DIFF}_sum{sel}{w}))"
            f" / sum(increase({series.SHADOW_SCORE_DIFF}_count{sel}{w}))"
        ),
    }
    names = ("compared", "disagreement", "score_shift")
    return default | _custom(templates, names, stable=stable, candidate=candidate, window=_window(window))


def query_all(provider: MetricsProvider, queries: dict[str, str], deadline: float) -> dict[str, Measurement]:
    """Every query at once, under one deadline: a metrics backend that hangs costs one deadline per
    analysis, not one timeout per query. A query not answered in time is an error Measurement."""
    pool = ThreadPoolExecutor(max_workers=max(1, len(queries)), thread_name_prefix="query")
    try:
        futures = {name: pool.submit(provider.query, q) for name, q in queries.items()}
        done, _ = wait(futures.values(), timeout=deadline)
        return {
            name: f.result()
            if f in done
            else Measurement.failed(queries[name], f"no answer within {deadline:g}s")
            for name, f in futures.items()
        }
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # a hung query is left to its own timeout


def _stats(m: dict[str, Measurement], prefix: str) -> VersionStats:
    custom = {k.removeprefix(f"{prefix}u."): v for k, v in m.items() if k.startswith(f"{prefix}u.")}
    return VersionStats(
        requests=m[f"{prefix}requests"],
        error_rate=m[f"{prefix}error_rate"],
        p95_ms=m[f"{prefix}p95_ms"],
        custom=custom,
    )


def user_queries(metrics: Mapping[str, MetricSection], version: str, window: float) -> dict[str, str]:
    """The user's own metrics (`rollout.metrics`) for one version, keyed `u.<name>`."""
    return {f"u.{name}": m.filled(version, _window(window)) for name, m in metrics.items()}


def measure_canary(
    provider: MetricsProvider,
    candidate: str,
    stable: str,
    window: float,
    templates: QueriesSection = DEFAULT,
    deadline: float = 2.0,
    user: Mapping[str, MetricSection] | None = None,
    stable_role: str = "primary",
) -> tuple[VersionStats, VersionStats]:
    """The candidate's and stable's real traffic over the same window, queried together (the
    user's own metrics too, for both versions). `stable_role` "baseline": what the fresh baseline
    server of stable answered at the candidate's share, instead of the long-running stable."""
    queries = {
        **{f"c.{k}": q for k, q in version_queries(candidate, "primary", window, templates).items()},
        **{f"s.{k}": q for k, q in version_queries(stable, stable_role, window, templates).items()},
        **{f"c.{k}": q for k, q in user_queries(user or {}, candidate, window).items()},
        **{f"s.{k}": q for k, q in user_queries(user or {}, stable, window).items()},
    }
    m = query_all(provider, queries, deadline)
    return _stats(m, "c."), _stats(m, "s.")


def measure_shadow(
    provider: MetricsProvider,
    stable: str,
    candidate: str,
    window: float,
    templates: QueriesSection = DEFAULT,
    deadline: float = 2.0,
) -> tuple[VersionStats, ShadowStats]:
    """The candidate's mirrored answers and their comparison with stable's, queried together."""
    queries = {
        **{f"c.{k}": q for k, q in version_queries(candidate, "shadow", window, templates).items()},
        **{f"x.{k}": q for k, q in shadow_queries(stable, candidate, window, templates).items()},
    }
    m = query_all(provider, queries, deadline)
    compared = ShadowStats(
        compared=m["x.compared"], disagreement=m["x.disagreement"], score_shift=m["x.score_shift"]
    )
    return _stats(m, "c."), compared


def measure_at_most(
    provider: MetricsProvider, version: str, bound: float, window: float, deadline: float = 2.0
) -> Measurement:
    """How many of a version's requests in the window took at most `bound` seconds -- a bucket
    bound of the gateway's latency histogram, which is what can be counted."""
    le = repr(float(bound))  # the exposition's spelling of a bound: 0.015, 1.0, 30.0
    sel = _sel(version, "primary", f',le="{le}"')
    q = f"sum(increase({DURATION}_bucket{sel}[{_window(window)}]))"
    return query_all(provider, {"at_most": q}, deadline)["at_most"]
