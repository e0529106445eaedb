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
