"""Analysis decisions as a pure function: no data never passes, failures name their numbers."""

from __future__ import annotations

import pytest

from launchbay.checks.verdict import Verdict
from launchbay.config.rollout import SloSection
from launchbay.rollout.engine.analysis import Thresholds, analyse_canary, analyse_shadow
from launchbay.rollout.metrics.base import Measurement, ShadowStats, VersionStats

T = Thresholds(
    slo=SloSection(
        p95_latency_ms=50, max_error_rate=0.01, max_p95_ratio_vs_stable=1.3, max_error_ratio_vs_stable=2.0
    ),
    min_samples=50,
    max_disagreement=0.02,
)


def m(v: float | None) -> Measurement:
    return Measurement(v)


def stats(requests: float | None = 500, err: float | None = 0.001, p95: float | None = 10.0) -> VersionStats:
    return VersionStats(m(requests), m(err), m(p95))


STABLE = stats()


def names(result) -> dict[str, Verdict]:  # type: ignore[no-untyped-def]
    return {c.name: c.verdict for c in result.checks}


def test_a_healthy_canary_passes() -> None:
    assert analyse_canary(stats(), STABLE, T).verdict is Verdict.PASS


def test_too_few_samples_waits_instead_of_passing() -> None:
    result = analyse_canary(stats(requests=12), STABLE, T)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.checks[0].observed == 12 and result.checks[0].detail == "waiting for more samples"


def test_no_data_is_inconclusive_and_a_failed_query_is_an_error() -> None:
    assert analyse_canary(stats(requests=None), STABLE, T).verdict is Verdict.INCONCLUSIVE
    down = VersionStats(Measurement.failed("q", "connection refused"), m(0.0), m(1.0))
    result = analyse_canary(down, STABLE, T)
    assert result.verdict is Verdict.ERROR and "connection refused" in result.checks[0].detail


def test_a_canary_failing_20_percent_of_requests_fails() -> None:
    result = analyse_canary(stats(err=0.2), STABLE, T)
    assert result.verdict is Verdict.FAIL
    assert names(result)["candidate error rate"] is Verdict.FAIL
    assert names(result)["error rate vs stable"] is Verdict.FAIL


def test_a_canary_5x_slower_than_stable_fails_on_the_ratio_even_within_the_absolute_slo() -> None:
    result = analyse_canary(stats(p95=45.0), stats(p95=9.0), T)
    assert names(result)["candidate p95 latency"] is Verdict.PASS
    ratio = next(c for c in result.checks if c.name == "p95 latency vs stable")
    assert ratio.verdict is Verdict.FAIL and ratio.observed == 5.0


def test_tiny_error_rates_are_not_compared_as_ratios() -> None:
    result = analyse_canary(stats(err=0.0015), stats(err=0.0001), T)
    assert names(result)["error rate vs stable"] is Verdict.PASS


def test_stable_without_data_makes_the_comparison_inconclusive() -> None:
    result = analyse_canary(stats(), stats(p95=None), T)
    assert names(result)["p95 latency vs stable"] is Verdict.INCONCLUSIVE
    assert result.verdict is Verdict.INCONCLUSIVE


@pytest.mark.parametrize(
    ("disagree", "shift", "verdict"),
    [
        (0.005, 0.01, Verdict.PASS),
        (0.08, 0.01, Verdict.FAIL),  # predictions disagree with stable beyond the threshold
        (0.0, 0.3, Verdict.FAIL),  # same classes, very different scores
    ],
)
def test_shadow_compares_answers_with_stable(disagree: float, shift: float, verdict: Verdict) -> None:
    shadow = ShadowStats(compared=m(400), disagreement=m(disagree), score_shift=m(shift))
    assert analyse_shadow(stats(), shadow, T).verdict is verdict


def test_shadow_waits_for_enough_compared_requests_and_sees_errors() -> None:
    few = ShadowStats(compared=m(3), disagreement=m(0.0), score_shift=m(0.0))
    assert analyse_shadow(stats(), few, T).verdict is Verdict.INCONCLUSIVE
    many = ShadowStats(compared=m(400), disagreement=m(0.0), score_shift=m(0.0))
    failing = analyse_shadow(stats(err=0.2), many, T)
    assert failing.verdict is Verdict.FAIL
    assert failing.evidence()["checks"][0]["observed"] == 0.2


def test_shadow_waits_for_enough_mirrored_requests() -> None:
    many = ShadowStats(compared=m(400), disagreement=m(0.0), score_shift=m(0.0))
    result = analyse_shadow(stats(requests=10), many, T)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert names(result) == {"mirrored requests": Verdict.INCONCLUSIVE}


def test_a_shadow_failing_every_request_fails_instead_of_waiting_for_comparisons() -> None:
    nothing_compared = ShadowStats(compared=m(None), disagreement=m(None), score_shift=m(None))
    result = analyse_shadow(stats(err=1.0), nothing_compared, T)
    assert result.verdict is Verdict.FAIL
    assert names(result)["candidate error rate (mirrored)"] is Verdict.FAIL


def test_a_few_unlucky_shadow_rows_wait_instead_of_rolling_back() -> None:
    # The tester's case: 3 differing rows of 59 against a 5% limit rolled a good candidate back.
    t = Thresholds(slo=T.slo, min_samples=30, max_disagreement=0.05)
    shadow = ShadowStats(compared=m(59), disagreement=m(3 / 59), score_shift=m(0.01))
    result = analyse_shadow(stats(requests=59, err=0.0), shadow, t)
    check = next(c for c in result.checks if c.name == "prediction disagreement with stable")
    assert check.verdict is Verdict.INCONCLUSIVE and "3 of 59" in check.detail and "waiting" in check.detail
    bad = ShadowStats(compared=m(250), disagreement=m(0.2), score_shift=m(0.01))
    judged = names(analyse_shadow(stats(requests=250, err=0.0), bad, t))
    assert judged["prediction disagreement with stable"] is Verdict.FAIL


def test_an_slo_stable_breaks_too_holds_the_step_unless_configured_to_fail() -> None:
    # The tester's case: the candidate (p95 51.9 ms) better than stable (60.9 ms) on a loaded machine.
    loaded = stats(p95=60.9)
    result = analyse_canary(stats(p95=51.9), loaded, T)
    check = next(c for c in result.checks if c.name == "candidate p95 latency")
    assert check.verdict is Verdict.INCONCLUSIVE and "stable is breaking the SLO too" in check.detail
    assert result.verdict is Verdict.INCONCLUSIVE  # held: neither promoted nor rolled back
    strict = Thresholds(slo=T.slo.model_copy(update={"when_stable_breaks": "fail"}), min_samples=50)
    assert analyse_canary(stats(p95=51.9), loaded, strict).verdict is Verdict.FAIL
    assert analyse_canary(stats(p95=51.9), STABLE, T).verdict is Verdict.FAIL  # stable within: blamed


def test_a_noisy_p95_over_the_absolute_slo_waits_unless_enough_requests_are_that_slow() -> None:
    # The tester's first case, stable within the SLO: a p95 of 30 requests over 50 ms is 2 slow ones.
    t = Thresholds(slo=T.slo.model_copy(update={"max_p95_ratio_vs_stable": 10.0}), min_samples=15)
    cand, stable = stats(requests=30, err=0.0, p95=58.0), stats(requests=90, err=0.0, p95=40.0)
    few = analyse_canary(cand, stable, t, over_slo=(0.05, m(28)))
    check = next(c for c in few.checks if c.name == "candidate p95 latency")
    assert check.verdict is Verdict.INCONCLUSIVE and "2 of 30" in check.detail and "50 ms" in check.detail
    many = analyse_canary(cand, stable, t, over_slo=(0.05, m(12)))  # 18 of 30 slower than 50 ms
    assert names(many)["candidate p95 latency"] is Verdict.FAIL
    assert names(analyse_canary(cand, stable, t))["candidate p95 latency"] is Verdict.FAIL  # no count


def test_one_error_in_a_small_window_is_not_blamed_but_a_fifth_failing_is() -> None:
    quiet = stats(requests=500, err=0.0)
    one = analyse_canary(stats(requests=60, err=1 / 60), quiet, T)
    assert one.verdict is Verdict.INCONCLUSIVE, one.checks
    assert {c.name for c in one.checks if c.verdict is Verdict.FAIL} == set()
    bad = analyse_canary(stats(requests=60, err=0.2), quiet, T)
    assert names(bad)["candidate error rate"] is Verdict.FAIL
    assert names(bad)["error rate vs stable"] is Verdict.FAIL
    assert "anytime bounds" in next(c for c in bad.checks if c.name == "candidate error rate").detail


def test_a_noisy_p95_over_the_ratio_waits_unless_enough_requests_are_that_slow() -> None:
    # The CI case: a good candidate's p95 of 40 requests was 16.5 ms against stable's 7.35 ms.
    t = Thresholds(slo=T.slo.model_copy(update={"max_p95_ratio_vs_stable": 2.0}), min_samples=15)
    cand, stable = stats(requests=40, err=0.0, p95=16.5), stats(requests=120, err=0.0, p95=7.35)
    few = analyse_canary(cand, stable, t, slower=(0.015, m(37)))  # 3 of 40 slower than 15 ms
    check = next(c for c in few.checks if c.name == "p95 latency vs stable")
    assert check.verdict is Verdict.INCONCLUSIVE and "3 of 40" in check.detail, check
    slow = analyse_canary(stats(requests=40, err=0.0, p95=45.0), stable, t, slower=(0.015, m(0)))
    assert names(slow)["p95 latency vs stable"] is Verdict.FAIL  # all 40 slower: a 5x slower candidate
    assert names(analyse_canary(cand, stable, t))["p95 latency vs stable"] is Verdict.FAIL  # no count


def test_a_retrain_that_changes_answers_as_it_did_offline_passes_and_skew_fails_naming_both() -> None:
    # The tester's case: offline the retrain disagreed with the champion on 15 of 500 rows; live
    # it does on about as many. A broken feature in the service makes it disagree on a third.
    from launchbay.checks.difference import OfflineDifference
    from launchbay.config.rollout import ShadowSection
    from launchbay.rollout.engine.plan import shadow_step

    step = shadow_step(ShadowSection(), OfflineDifference("1", 500, disagreeing=15, score_shift=0.02), "1")
    t = Thresholds(slo=T.slo, min_samples=50, max_disagreement=step.max_disagreement,
                   max_score_shift=step.max_score_shift or 1.0, shadow_basis=step.basis)  # fmt: skip
    like_offline = ShadowStats(compared=m(300), disagreement=m(10 / 300), score_shift=m(0.025))
    assert analyse_shadow(stats(requests=300, err=0.0), like_offline, t).verdict is Verdict.PASS
    skewed = ShadowStats(compared=m(300), disagreement=m(0.33), score_shift=m(0.3))
    result = analyse_shadow(stats(requests=300, err=0.0), skewed, t)
    check = next(c for c in result.checks if c.name == "prediction disagreement with stable")
    assert check.verdict is Verdict.FAIL and "99 of 300" in check.detail
    assert "offline vs v1: 15 of 500 distinct held-out rows disagree (3.0%)" in check.detail
    assert check.expected == f"<= {step.max_disagreement:g}"
