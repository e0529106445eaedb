"""Anytime-valid bounds for rates: right at every look, tight enough to decide in seconds."""

from __future__ import annotations

import numpy as np
import pytest

from launchbay.rollout.engine.stats import against_limit, rate_bounds


def test_looking_after_every_request_keeps_the_error_rate_under_the_level() -> None:
    # 400 candidates exactly at a 5% disagreement rate, looked at after each of 300 rows: a
    # fixed-sample interval checked that often would blame far more than 5% of them.
    rng = np.random.default_rng(0)
    blamed = 0
    for _ in range(400):
        events = np.cumsum(rng.random(300) < 0.05)
        for n in range(10, 301, 5):
            if rate_bounds(int(events[n - 1]), n, 0.95).low > 0.05:
                blamed += 1
                break
    assert blamed / 400 <= 0.05, blamed


def test_three_differing_rows_in_59_against_a_5_percent_limit_wait_for_more() -> None:
    judged = against_limit(3, 59, 0.05)
    assert judged.verdict == "unsure"
    assert judged.bounds.low < 0.05 < judged.bounds.high
    assert "3 of 59 (5.1%)" in judged.bounds.describe()
    assert against_limit(1, 46, 0.05).verdict == "within"


@pytest.mark.parametrize(
    ("events", "trials", "limit"),
    [(3, 15, 0.01), (25, 250, 0.02), (10, 50, 0.05), (15, 15, 0.05)],  # 20% errors at min_samples, ...
)
def test_a_clearly_bad_rate_is_over_the_limit_within_a_few_seconds_of_traffic(
    events: int, trials: int, limit: float
) -> None:
    assert against_limit(events, trials, limit).verdict == "over"


def test_bounds_narrow_with_evidence_and_contain_the_estimate() -> None:
    widths = [rate_bounds(n // 10, n).high - rate_bounds(n // 10, n).low for n in (50, 500, 5000)]
    assert widths[0] > widths[1] > widths[2]
    b = rate_bounds(0, 100)
    assert b.low == 0.0 and 0 < b.high < 0.1
    assert rate_bounds(0, 0).high == 1.0  # no evidence: anything is possible


def test_the_upper_bound_too_holds_at_every_look() -> None:
    # A stable version at 1% errors: its upper bound is what a candidate is compared against, so
    # it must not fall below the true rate more often than the level says either.
    rng = np.random.default_rng(1)
    missed = 0
    for _ in range(400):
        events = np.cumsum(rng.random(300) < 0.01)
        if any(rate_bounds(int(events[n - 1]), n, 0.95).high < 0.01 for n in range(10, 301, 5)):
            missed += 1
    assert missed / 400 <= 0.05, missed


def test_ten_percent_disagreement_against_a_five_percent_limit_is_decided_in_under_four_seconds() -> None:
    # At 50 compared rows/s: 180 rows is 3.6 s of shadow traffic (a Jeffreys mixture needed 300).
    assert against_limit(16, 160, 0.05).verdict == "unsure"
    assert against_limit(18, 180, 0.05).verdict == "over"
    assert against_limit(2, 2, 0.01).verdict == "over"  # a candidate failing everything: two requests
