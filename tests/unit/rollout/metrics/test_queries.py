"""The analysis' PromQL: launchbay's gateway metrics by default, the user's templates when given."""

from __future__ import annotations

from launchbay.config.rollout import QueriesSection
from launchbay.rollout.metrics.base import Measurement
from launchbay.rollout.metrics.queries import shadow_queries, version_queries


def test_default_queries_select_one_version_and_role_over_the_window() -> None:
    q = version_queries("3", "primary", 9.6)
    assert q["requests"] == 'sum(increase(launchbay_gateway_requests_total{version="3",role="primary"}[10s]))'
    assert 'code="5xx"' in q["error_rate"] and q["error_rate"].count("[10s]") == 2
    assert q["p95_ms"].startswith("histogram_quantile(0.95,") and q["p95_ms"].endswith("* 1000")
    assert "[2s]" in version_queries("3", "shadow", 0.5)["requests"]  # rate needs two scrapes


def test_templates_replace_only_what_the_user_set() -> None:
    templates = QueriesSection(
        requests='sum(increase(bentoml_service_request_total{{launchbay_version="{version}"}}[{window}]))',
        disagreement="my_disagreement{{stable='{stable}',candidate='{candidate}'}}",
    )
    q = version_queries("3", "primary", 10, templates)
    assert q["requests"] == 'sum(increase(bentoml_service_request_total{launchbay_version="3"}[10s]))'
    assert q["p95_ms"] == version_queries("3", "primary", 10)["p95_ms"]
    s = shadow_queries("2", "3", 10, templates)
    assert s["disagreement"] == "my_disagreement{stable='2',candidate='3'}"
    assert s["compared"] == shadow_queries("2", "3", 10)["compared"]


def test_cluster_targets_default_to_the_services_own_metrics_per_namespace_model_and_version() -> None:
    from launchbay.rollout.metrics.queries import templates_for

    user = QueriesSection(p95_ms="my_p95{{v='{version}',m='{{model}}'}}")
    t = templates_for("kubernetes", user, "fraud", "team-a")
    q = version_queries("3", "primary", 10, t)
    scope = 'namespace="team-a",model="fraud"'
    assert q["requests"] == (
        f'sum(increase(bentoml_service_request_total{{{scope},endpoint="/predict",version="3"}}[10s]))'
    )
    assert 'http_response_code=~"5.."' in q["error_rate"]
    assert q["p95_ms"] == "my_p95{v='3',m='fraud'}"  # the user's template wins, scoped the same way
    s = shadow_queries("2", "3", 10, t)
    assert f'launchbay_predictions_total{{{scope},version="3",predicted_class="1"}}' in s["disagreement"]
    assert f'launchbay_prediction_score_sum{{{scope},version="2"}}' in s["score_shift"]
    assert f'{{{scope},version="2"}}' in s["compared"] or f'{{{scope},version="3"}}' in s["compared"]
    # Every selector of every default names the namespace and the model: another team's version 3
    # is never counted.
    for text in [*q.values(), *s.values()][:2] + list(s.values()):
        for selector in text.split("{")[1:]:
            if "version=" in selector:
                assert selector.startswith(scope), text
    assert templates_for("local", QueriesSection()) == QueriesSection()  # the gateway's metrics


def test_a_hung_metrics_backend_costs_one_deadline_per_analysis_not_one_timeout_per_query() -> None:
    import time

    from launchbay.rollout.metrics.base import Measurement
    from launchbay.rollout.metrics.queries import measure_canary, measure_shadow

    class Hung:
        def query(self, query: str) -> Measurement:
            time.sleep(2.0)  # what a stopped Prometheus costs each query until its client timeout
            return Measurement(1.0, None, query)

    started = time.monotonic()
    candidate, stable = measure_canary(Hung(), "2", "1", 10, deadline=0.5)
    mirrored, compared = measure_shadow(Hung(), "1", "2", 10, deadline=0.5)
    took = time.monotonic() - started
    assert took < 1.5, took  # two analyses of 6 queries each: two deadlines, not 12 x 2 s
    for m in (candidate.p95_ms, stable.requests, mirrored.error_rate, compared.disagreement):
        assert m.error == "no answer within 0.5s" and m.value is None


def test_the_latency_count_asks_for_a_bucket_bound_spelled_as_the_gateway_exposes_it() -> None:
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from launchbay.rollout.local.gateway import LATENCY_BUCKETS
    from launchbay.rollout.metrics.queries import measure_at_most

    registry = CollectorRegistry()
    Histogram("h", "h", buckets=LATENCY_BUCKETS, registry=registry).observe(0.01)
    exposed = {line.split('le="')[1].split('"')[0] for line in generate_latest(registry).decode().splitlines()
               if 'le="' in line}  # fmt: skip

    class Asked:
        def __init__(self) -> None:
            self.queries: list[str] = []

        def query(self, q: str) -> Measurement:
            self.queries.append(q)
            return Measurement(1.0)

    for bound in LATENCY_BUCKETS:
        asked = Asked()
        assert measure_at_most(asked, "2", bound, 10).value == 1.0
        (q,) = asked.queries
        assert q.split(',le="')[1].split('"')[0] in exposed, q
