"""Loading, fingerprinting and splitting the training data the same way in every step.

The train and evaluate steps run in separate processes (separate pods on Argo). They agree on
the held-out rows because the split is a pure function of the data and `data.split_seed`; the
digest of the held-out row ids is logged so that agreement can be checked after the fact.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pandas as pd

from launchbay.config import LaunchbayConfig
from launchbay.storage import file_digest as file_digest  # the steps fingerprint data through here


@dataclass(frozen=True)
class Split:
    """Features and target of the training and held-out rows."""

    train_x: pd.DataFrame
    train_y: pd.Series
    test_x: pd.DataFrame
    test_y: pd.Series

    @property
    def test_digest(self) -> str:
        """sha256 of the held-out row index: equal digests mean equal held-out sets."""
        h = hashlib.sha256(",".join(map(str, self.test_x.index)).encode())
        return h.hexdigest()[:16]


def labels(target: pd.Series, task: str) -> pd.Series:
    """The target as the model learns it: numbers for regression; class labels otherwise, whole
    numbers as ints (a CSV's 1.0 is class 1) and anything else (text) as it is."""
    if task == "regression":
        return target.astype(float)
    numbers = pd.api.types.is_numeric_dtype(target) and not pd.api.types.is_bool_dtype(target)
    if numbers and (target.dropna() % 1 == 0).all():
        return target.astype(int)
    return target


def split(frame: pd.DataFrame, cfg: LaunchbayConfig) -> Split:
    """Seeded train/held-out split of the configured feature columns (stratified by class)."""
    from sklearn.model_selection import train_test_split

    features = list(cfg.data.features)
    target = labels(frame[cfg.data.target], cfg.model.task)
    classified = cfg.model.task != "regression"
    stratify = target if classified and target.value_counts().min() >= 2 else None
    train_x, test_x, train_y, test_y = train_test_split(
        frame[features],
        target,
        test_size=cfg.data.test_size,
        random_state=cfg.data.split_seed,
        stratify=stratify,
    )
    return Split(train_x, train_y, test_x, test_y)
