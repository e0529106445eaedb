import numpy as np
import pandas as pd
import pytest

from launchbay.checks.drift import psi_categorical, psi_numeric


def test_same_distribution_has_small_psi() -> None:
    rng = np.random.default_rng(0)
    ref, cur = pd.Series(rng.normal(0, 1, 20_000)), pd.Series(rng.normal(0, 1, 20_000))
    assert psi_numeric(ref, cur) < 0.01


def test_shifted_distribution_has_large_psi() -> None:
    rng = np.random.default_rng(0)
    ref, cur = pd.Series(rng.normal(0, 1, 20_000)), pd.Series(rng.normal(1, 1, 20_000))
    assert psi_numeric(ref, cur) > 0.25


def test_values_outside_reference_range_give_a_finite_psi() -> None:
    # The reason PSI uses open-ended tail bins: KL without tail holdout is infinite here.
    ref = pd.Series(np.linspace(0, 1, 1000))
    cur = pd.Series(np.linspace(5, 6, 1000))
    value = psi_numeric(ref, cur)
    assert np.isfinite(value) and value > 1


def test_categorical_psi_sees_a_new_mix_and_new_values() -> None:
    ref = pd.Series(["a"] * 80 + ["b"] * 20)
    assert psi_categorical(ref, ref.copy()) == pytest.approx(0.0)
    assert psi_categorical(ref, pd.Series(["a"] * 20 + ["b"] * 80)) > 0.25
    assert psi_categorical(ref, pd.Series(["a"] * 80 + ["c"] * 20)) > 0.25


def test_no_values_is_an_error_not_zero() -> None:
    with pytest.raises(ValueError):
        psi_numeric(pd.Series([1.0, 2.0]), pd.Series([np.nan, np.nan]))


def test_a_large_psi_on_few_rows_of_the_same_distribution_is_within_noise() -> None:
    from launchbay.checks.drift import drift_test

    rng = np.random.default_rng(1)
    ref = pd.Series(rng.lognormal(3, 1, 5000))
    # 120 rows from the reference's own distribution: PSI is noisy, the p-value knows it
    tests = [drift_test(ref, pd.Series(rng.lognormal(3, 1, 120)), categorical=False) for _ in range(40)]
    assert max(t.psi for t in tests) > 0.1  # a bare PSI rule would have fired sooner or later
    level = 0.01 / 7  # the gate's default family-wise 1% across the example's 7 features
    assert sum(t.p_value < level for t in tests) == 0
    assert all(t.current_rows == 120 and t.reference_rows == 5000 for t in tests)


def test_a_real_shift_is_significant_and_the_test_is_deterministic() -> None:
    from launchbay.checks.drift import drift_test

    rng = np.random.default_rng(2)
    ref, cur = pd.Series(rng.normal(0, 1, 5000)), pd.Series(rng.normal(0.6, 1, 500))
    moved = drift_test(ref, cur, categorical=False, resamples=2000)
    assert moved.psi > 0.2 and moved.p_value == pytest.approx(1 / 2001)
    assert drift_test(ref, cur, categorical=False, resamples=2000) == moved
    before, after = pd.Series(["a"] * 800 + ["b"] * 200), pd.Series(["a"] * 50 + ["b"] * 50)
    mix = drift_test(before, after, categorical=True)
    assert mix.psi > 0.25 and mix.p_value < 0.001
