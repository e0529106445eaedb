"""The cost model against hand-computed cases, and the rules that rule options out."""

from __future__ import annotations

import pytest

from launchbay.rollout.advise import (
    EdgeFacts,
    Prices,
    ServingProfile,
    TrafficProfile,
    advise,
    crossovers,
    function,
    knative_scale_to_zero,
    kubernetes_always_on,
    kubernetes_autoscaled,
    per_1000,
)

M = ServingProfile(cold_start_s=10, p50_ms=2.0, p95_ms=8.0, max_rps=200, memory_mb=512, package_mb=300, cpu=1)
P = Prices()
STEADY = TrafficProfile(requests_per_day=8_640_000, peak_rps=300)  # 100 req/s on average, all day
SPARSE = TrafficProfile(requests_per_day=2000, peak_rps=5, idle_share=0.95, bursts_per_day=20)
INSTANCE_HOUR = 1 * 0.0445 + 0.5 * 0.0049225  # 1 vCPU + 0.5 GB on Kubernetes = 0.04696125 $/h


def test_cost_per_1000_is_1000_times_hourly_cost_over_inferences_per_hour() -> None:
    assert per_1000(2.0, 4000) == pytest.approx(0.5)
    o = kubernetes_always_on(M, STEADY, P)
    assert o.cost_per_1000 == pytest.approx(1000 * INSTANCE_HOUR / (200 * 3600))  # 6.52e-5 $
    f = function(M, STEADY, P)
    per_request = 0.002 * 0.5 * 0.0000166667 + 0.20 / 1e6  # 2 ms x 0.5 GB, plus the request fee
    assert f.cost_per_1000 == pytest.approx(1000 * per_request)


def test_monthly_costs_by_hand_for_steady_traffic() -> None:
    always = kubernetes_always_on(M, STEADY, P)
    assert always.instances_at_peak == 2  # 300 req/s at 200 per instance
    assert always.monthly_cost == pytest.approx(2 * INSTANCE_HOUR * 24 * 30)  # $67.62
    assert kubernetes_autoscaled(M, STEADY, P).monthly_cost == pytest.approx(1 * INSTANCE_HOUR * 24 * 30)
    knative = knative_scale_to_zero(M, STEADY, P)
    per_second = 0.000024 + 0.5 * 0.0000025
    assert knative.monthly_cost == pytest.approx((86400 * per_second + 8_640_000 * 0.4e-6) * 30)  # $169.13
    fn = function(M, STEADY, P)
    assert fn.monthly_cost == pytest.approx(8_640_000 * (0.002 * 0.5 * 0.0000166667 + 0.2e-6) * 30)  # $56.16
    assert fn.instances_at_peak == 1  # 300 req/s x 2 ms = 0.6 concurrent


def test_sparse_bursts_favour_paying_per_request() -> None:
    advice = advise(M, SPARSE, p95_slo_ms=50)
    costs = {o.name: o.monthly_cost for o in advice.options}
    assert costs["function"] == pytest.approx(2000 * (0.002 * 0.5 * 0.0000166667 + 0.2e-6) * 30)
    # Sparse: billed for the requests' own time, 2000 x 100 ms (rounded up), not the 4320 active s.
    per_second = 0.000024 + 0.5 * 0.0000025
    assert costs["knative-scale-to-zero"] == pytest.approx((2000 * 0.1 * per_second + 2000 * 0.4e-6) * 30)
    assert advice.recommended == "function"
    assert "cheapest option that meets the p95 SLO" in advice.reasons[0]


def test_frequent_cold_starts_reach_the_p95_and_rule_serverless_out() -> None:
    cold = TrafficProfile(requests_per_day=2000, peak_rps=5, idle_share=0.95, bursts_per_day=200)
    advice = advise(M, cold, p95_slo_ms=50)
    by_name = {o.name: o for o in advice.options}
    assert by_name["function"].cold_start_share == pytest.approx(0.1)
    assert by_name["function"].p95_ms == pytest.approx(10_000 + 2)  # cold start + an answer
    assert not by_name["function"].viable and not by_name["knative-scale-to-zero"].viable
    assert advice.recommended is not None and advice.recommended.startswith("kubernetes")


def test_hard_limits_rule_a_function_out() -> None:
    big = ServingProfile(cold_start_s=1, p50_ms=2, p95_ms=8, max_rps=200, memory_mb=12_000, package_mb=11_000)
    fn = function(big, STEADY, P)
    assert len(fn.ruled_out) == 2 and "10240 MB limit" in fn.ruled_out[0]
    assert advise(big, STEADY, p95_slo_ms=50).recommended != "function"


def test_nothing_viable_is_said_plainly() -> None:
    slow = ServingProfile(cold_start_s=1, p50_ms=80, p95_ms=120, max_rps=20, memory_mb=512, package_mb=1)
    advice = advise(slow, STEADY, p95_slo_ms=50)
    assert advice.recommended is None and "no option meets" in advice.reasons[0]


def test_crossovers_mark_where_the_cheapest_option_changes() -> None:
    volumes = [10.0**k for k in range(2, 10)]
    found = crossovers(M, SPARSE, P, volumes)
    assert found and found[0][1] == "function"  # per-request pricing wins at low volume ...
    assert found[-1][2].startswith("kubernetes")  # ... replicas win at high volume


def test_a_profile_must_make_sense() -> None:
    with pytest.raises(ValueError, match="idle_share"):
        TrafficProfile(requests_per_day=10, peak_rps=1, idle_share=1.0)


LEAN = ServingProfile(cold_start_s=0.6, p50_ms=0.7, p95_ms=1.5, max_rps=1500, memory_mb=120, package_mb=90)


def test_serverless_options_are_judged_on_the_lean_runtimes_cold_start() -> None:
    """The BentoML server's 10 s cold start reaches the p95 of sparse traffic and rules serverless
    out; the lean runtime that a scale-to-zero target or a function actually runs does not."""
    often = TrafficProfile(requests_per_day=2000, peak_rps=5, idle_share=0.95, bursts_per_day=200)
    slow = advise(M, often, p95_slo_ms=1000)  # 10% of requests meet a cold start: it is the p95
    assert "knative-scale-to-zero" not in {o.name for o in slow.options if o.viable}
    fast = advise(M, often, p95_slo_ms=1000, lean=LEAN)
    by_name = {o.name: o for o in fast.options}
    assert by_name["knative-scale-to-zero"].viable and by_name["function"].viable
    assert by_name["knative-scale-to-zero"].p95_ms == pytest.approx(0.6 * 1000 + 0.7)  # cold + answer
    assert by_name["kubernetes-always-on"].p95_ms == M.p95_ms  # always-on options keep the server's figures
    assert any("judged on the lean runtime: cold start 0.60s" in r for r in fast.reasons)


def test_the_edge_option_is_listed_with_its_local_latency_and_size_but_never_recommended() -> None:
    facts = EdgeFacts(bundle_mb=0.05, dependencies_mb=95, p50_ms=0.06, p95_ms=0.09, cold_start_s=0.3)
    advice = advise(M, SPARSE, p95_slo_ms=50, lean=LEAN, edge_facts=facts)
    edge = next(o for o in advice.options if o.name == "edge")
    assert edge.viable and edge.p95_ms == 0.09 and edge.monthly_cost == 0.0
    assert advice.recommended != "edge"
    assert any(r.startswith("edge (not a hosting option)") and "no network hop" in r for r in advice.reasons)
    tight = advise(M, SPARSE, p95_slo_ms=50, prices=Prices(edge_max_bundle_mb=50), edge_facts=facts)
    limited = next(o for o in tight.options if o.name == "edge")
    assert not limited.viable and "above the 50 MB limit" in limited.ruled_out[0]
