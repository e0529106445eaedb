"""Population stability index (PSI): how far a feature's distribution moved from the reference,
and whether that is more than sampling noise at these sample sizes.

PSI = sum over bins of (cur - ref) * ln(cur / ref). Rules of thumb: < 0.1 stable, 0.1-0.25 a
moderate shift, > 0.25 a major one. Bins are quantiles of the reference with open-ended outer
bins, so values outside the reference range land in a tail bin instead of making the measure
infinite (the trap of a KL divergence without tail holdout). Empty bins get a small floor.

A PSI is an effect size, and a noisy one: 120 rows drawn from the reference's own distribution
easily score 0.2 on 10 bins. So each PSI gets a p-value from its null distribution at the actual
sample sizes: both samples' bin counts are redrawn (multinomial) from the pooled bin shares, as
if nothing had moved, and the observed PSI is ranked among the redrawn ones (`drift_test`). The
gate calls a feature drifted only when the move is both large (PSI over the threshold) and
beyond noise (p under the family-wise level split across the features, Bonferroni).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

_FLOOR = 1e-4


@dataclass(frozen=True)
class DriftTest:
    """One feature's drift: the effect size, its significance, and the sizes behind them."""

    psi: float
    p_value: float
    reference_rows: int
    current_rows: int
    resamples: int


def drift_test(
    reference: pd.Series, current: pd.Series, categorical: bool, bins: int = 10, resamples: int = 2000,
    seed: int = 0,
) -> DriftTest:  # fmt: skip
    """PSI of a feature and its p-value under "nothing moved" at these two sample sizes.

    Deterministic for a given seed (a report must not change between two runs on the same data).
    The smallest p-value it can give is 1 / (resamples + 1).
    """
    ref_counts, cur_counts = _counts(reference, current, categorical, bins)
    n_ref, n_cur = int(ref_counts.sum()), int(cur_counts.sum())
    observed = _psi(ref_counts / n_ref, cur_counts / n_cur)
    pooled = (ref_counts + cur_counts) / (n_ref + n_cur)
    rng = np.random.default_rng(seed)
    null_ref = rng.multinomial(n_ref, pooled, size=resamples) / n_ref
    null_cur = rng.multinomial(n_cur, pooled, size=resamples) / n_cur
    null = _psi_rows(null_ref, null_cur)
    p_value = (1 + int(np.sum(null >= observed - 1e-12))) / (resamples + 1)
    return DriftTest(observed, p_value, n_ref, n_cur, resamples)


def _counts(
    reference: pd.Series, current: pd.Series, categorical: bool, bins: int
) -> tuple[np.ndarray, np.ndarray]:
    if categorical:
        ref = reference.dropna().astype(str)
        cur = current.dropna().astype(str)
        if len(ref) == 0 or len(cur) == 0:
            raise ValueError("no non-null values to compare")
        values = sorted(set(ref.unique()) | set(cur.unique()))
        return (
            ref.value_counts().reindex(values, fill_value=0).to_numpy(),
            cur.value_counts().reindex(values, fill_value=0).to_numpy(),
        )
    r = reference.dropna().to_numpy(dtype=float)
    c = current.dropna().to_numpy(dtype=float)
    if len(r) == 0 or len(c) == 0:
        raise ValueError("no non-null values to compare")
    edges = np.unique(np.quantile(r, np.linspace(0, 1, bins + 1))[1:-1])
    k = len(edges) + 1
    return (
        np.bincount(np.searchsorted(edges, r, side="right"), minlength=k),
        np.bincount(np.searchsorted(edges, c, side="right"), minlength=k),
    )


def _psi_rows(ref_share: np.ndarray, cur_share: np.ndarray) -> np.ndarray:
    ref_share = np.maximum(ref_share, _FLOOR)
    cur_share = np.maximum(cur_share, _FLOOR)
    result: np.ndarray = np.sum((cur_share - ref_share) * np.log(cur_share / ref_share), axis=1)
    return result


def psi_numeric(reference: pd.Series, current: pd.Series, bins: int = 10) -> float:
    """PSI of a numeric feature, with reference-quantile bins."""
    ref, cur = _counts(reference, current, categorical=False, bins=bins)
    return _psi(ref / ref.sum(), cur / cur.sum())


def psi_categorical(reference: pd.Series, current: pd.Series) -> float:
    """PSI of a categorical (or boolean) feature, one bin per value seen in either frame."""
    ref, cur = _counts(reference, current, categorical=True, bins=0)
    return _psi(ref / ref.sum(), cur / cur.sum())


def _psi(ref_share: np.ndarray, cur_share: np.ndarray) -> float:
    return float(_psi_rows(ref_share[None, :], cur_share[None, :])[0])
