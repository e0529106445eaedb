"""Population stability index (PSI): how far a feature's distribution moved from the reference.

PSI = sum over bins of (cur - ref) * ln(cur / ref). Rules of thumb: < 0.1 stable, 0.1-0.25 a
moderate shift, > 0.25 a major one. Bins are quantiles of the reference with open-ended outer
bins, so values outside the reference range land in a tail bin instead of making the measure
infinite (the trap of a KL divergence without tail holdout). Empty bins get a small floor.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_FLOOR = 1e-4


def psi_numeric(reference: pd.Series, current: pd.Series, bins: int = 10) -> float:
    """PSI of a numeric feature, with reference-quantile bins."""
    ref = reference.dropna().to_numpy(dtype=float)
    cur = current.dropna().to_numpy(dtype=float)
    if len(ref) == 0 or len(cur) == 0:
        raise ValueError("no non-null values to compare")
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1))[1:-1])
    ref_share = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1) / len(ref)
    cur_share = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1) / len(cur)
    return _psi(ref_share, cur_share)


def psi_categorical(reference: pd.Series, current: pd.Series) -> float:
    """PSI of a categorical (or boolean) feature, one bin per value seen in either frame."""
    ref = reference.dropna().astype(str)
    cur = current.dropna().astype(str)
    if len(ref) == 0 or len(cur) == 0:
        raise ValueError("no non-null values to compare")
    values = sorted(set(ref.unique()) | set(cur.unique()))
    ref_share = ref.value_counts(normalize=True).reindex(values, fill_value=0.0).to_numpy()
    cur_share = cur.value_counts(normalize=True).reindex(values, fill_value=0.0).to_numpy()
    return _psi(ref_share, cur_share)


def _psi(ref_share: np.ndarray, cur_share: np.ndarray) -> float:
    ref_share = np.maximum(ref_share, _FLOOR)
    cur_share = np.maximum(cur_share, _FLOOR)
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))
