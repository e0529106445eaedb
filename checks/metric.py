"""The held-out metrics launchbay reports and gates on: their names as people read them, and which
way is better. A module of its own so that what shows them (`status`) needs no numerical library."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """How one held-out metric reads and which way is better."""

    label: str
    higher_is_better: bool
    bounded: bool
    """In [0, 1]: a loss vs the champion is absolute; otherwise (errors) relative to its value."""


METRICS = {
    "roc_auc": Metric("ROC AUC", True, True),
    "precision": Metric("precision", True, True),
    "recall": Metric("recall", True, True),
    "f1": Metric("F1", True, True),
    "accuracy": Metric("accuracy", True, True),
    "pr_auc": Metric("PR AUC", True, True),
    "rmse": Metric("RMSE", False, False),
    "mae": Metric("MAE", False, False),
    "r2": Metric("R²", True, True),
}
