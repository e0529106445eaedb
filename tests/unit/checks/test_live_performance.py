"""Live performance against the offline loss rate, by betting."""

from __future__ import annotations

import numpy as np

from launchbay.checks.live_performance import LossDetector, Offline


def test_the_limit_is_the_offline_rates_upper_bound_with_the_tolerance() -> None:
    offline = Offline(losses=50, rows=1000)
    assert 0.05 * 1.1 < offline.limit(0.1) < 0.08 * 1.1
    assert Offline(0, 0).limit() == 1.0


def test_labels_as_good_as_offline_raise_nothing_and_a_doubled_error_rate_does() -> None:
    rng = np.random.default_rng(1)
    offline = Offline(losses=100, rows=2000)
    quiet = LossDetector(offline.limit(), threshold=5000, start_every=10)
    for _ in range(3000):
        quiet.update(int(rng.binomial(20, 0.05)), 20)
    assert quiet.alarm_at is None
    loud = LossDetector.from_dict(quiet.to_dict())
    for _ in range(300):
        loud.update(int(rng.binomial(20, 0.12)), 20)
        if loud.alarm_at is not None:
            break
    assert loud.alarm_at is not None and loud.alarm_at - quiet.batches < 100
    assert loud.labelled > quiet.labelled


def test_batches_without_labels_change_nothing() -> None:
    detector = LossDetector(0.1, threshold=100)
    detector.update(0, 0)
    assert detector.statistic() == 1.0 and detector.labelled == 0
