"""The live drift e-detector: valid bets, one budget across features, alarms on real shifts only."""

from __future__ import annotations

import numpy as np
import pytest

from launchbay.checks.live_drift import Bins, Detector, binned, project, threshold_for


@pytest.mark.parametrize("seed", range(20))
def test_the_projected_score_is_an_e_value_under_every_distribution_in_the_band(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 12))
    centre = rng.dirichlet(np.ones(k))
    low, high = centre * 0.8, np.minimum(centre * 1.2 + 0.01, 1)
    q = rng.dirichlet(np.ones(k) * 0.5)
    p = project(q, low, high)
    assert abs(p.sum() - 1) < 1e-9 and np.all(p >= low - 1e-9) and np.all(p <= high + 1e-9)
    score = q / p
    # The worst case over the band is a linear programme: fill the bins of highest score first.
    worst = low.copy()
    for j in np.argsort(-score):
        worst[j] += min(high[j] - low[j], 1 - worst.sum())
    assert worst @ score <= 1 + 1e-7


def test_numeric_bins_put_missing_and_non_numbers_apart_and_tails_in_open_bins() -> None:
    bins = binned("amount", list(range(100)), categorical=False, bins=4)
    assert bins.counts == (25, 25, 25, 25, 0)
    assert bins.index([-1e9, 50, 1e9, None, float("nan"), "oops"]).tolist() == [0, 2, 3, 4, 4, 4]


def test_category_bins_keep_unknown_values_in_other() -> None:
    bins = binned("colour", ["red"] * 6 + ["blue"] * 3 + [None], categorical=True)
    assert bins.categories == ("red", "blue")
    assert bins.index(["red", "green", None]).tolist() == [0, 2, 3]
    assert bins.reference.round(2).tolist() == [0.6, 0.3, 0.0, 0.1]


def test_a_band_widens_with_a_smaller_reference_and_with_the_tolerance() -> None:
    def width(b: Bins, tolerance: float) -> np.ndarray:
        low, high = b.band(tolerance)
        return high - low

    small, large = Bins("x", (10, 90)), Bins("x", (1000, 9000))
    assert np.all(width(small, 0.0) > width(large, 0.0))
    assert np.all(width(large, 0.2) > width(large, 0.0))


def _stream(
    detector: Detector, bins: list[Bins], rng: np.random.Generator, shift: float, batches: int
) -> int | None:
    for i in range(batches):
        detector.update({b.name: b.index(rng.normal(shift, size=300)) for b in bins})
        if detector.alarm_at is not None:
            return i + 1
    return None


def test_stationary_traffic_raises_no_alarm_and_a_shift_does_on_any_one_of_many_features() -> None:
    rng = np.random.default_rng(7)
    bins = [binned(f"f{i}", rng.normal(size=20_000).tolist(), categorical=False) for i in range(8)]
    detector = Detector(bins, threshold_for(365 * 86400, 60, 10), start_every=10)
    assert _stream(detector, bins, rng, 0.0, 600) is None
    assert max(detector.evidence().values()) < 2
    # One feature of eight moves by half a standard deviation: found within a few batches.
    moved = Detector.from_dict(detector.to_dict())
    for _ in range(60):
        batch = {b.name: b.index(rng.normal(0.5 if b.name == "f3" else 0.0, size=300)) for b in bins}
        moved.update(batch)
        if moved.alarm_at is not None:
            break
    assert moved.alarm_at is not None and moved.alarm_at - detector.batches <= 10
    assert max(moved.evidence(), key=lambda f: moved.evidence()[f]) == "f3"


def test_the_state_survives_a_round_trip_and_scores_the_same() -> None:
    rng = np.random.default_rng(3)
    bins = [binned("x", rng.normal(size=2000).tolist(), categorical=False)]
    a = Detector(bins, 1e6, start_every=2, keep=3)
    for _ in range(9):
        a.update({"x": bins[0].index(rng.normal(0.2, size=50))})
    b = Detector.from_dict(a.to_dict())
    batch = {"x": bins[0].index(rng.normal(0.2, size=50))}
    assert a.update(batch) == pytest.approx(b.update(batch))
    assert len(a.starts) == 3  # only the newest bets are kept
