"""The model gate: a candidate's quality on held-out data, against floors and against the champion.

Both models are scored on the *same* held-out rows, so the comparison measures the models, not
the luck of a split. MLflow's `MetricThreshold` can only demand an improvement
(`min_absolute_change` must be positive); launchbay's rule is "at most `max_regression_vs_champion`
worse than the champion", so the comparison is made here, with the same vocabulary.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from launchbay.checks.report import CheckResult, GateReport
from launchbay.checks.verdict import Verdict
from launchbay.config import GatesSection

GATE = "model gate"


@dataclass(frozen=True)
class Scores:
    """Quality of a binary classifier on one held-out set."""

    roc_auc: float | None
    """None when the held-out set has a single class (AUC is undefined)."""
    precision: float
    recall: float
    f1: float
    pr_auc: float | None
    rows: int
    positives: int

    def as_metrics(self, prefix: str = "") -> dict[str, float]:
        """Numbers to log to MLflow (undefined values left out rather than logged as 0)."""
        return {f"{prefix}{k}": float(v) for k, v in asdict(self).items() if v is not None}


def score(model: Any, features: Any, target: Any, threshold: float) -> Scores:
    """Score `model.predict_proba` on held-out rows at the decision threshold."""
    from sklearn.metrics import (
        average_precision_score,
        f1_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    y = np.asarray(target).astype(int)
    proba = np.asarray(model.predict_proba(features))[:, 1]
    pred = (proba >= threshold).astype(int)
    two_classes = len(np.unique(y)) == 2
    return Scores(
        roc_auc=float(roc_auc_score(y, proba)) if two_classes else None,
        precision=float(precision_score(y, pred, zero_division=0)),
        recall=float(recall_score(y, pred, zero_division=0)),
        f1=float(f1_score(y, pred, zero_division=0)),
        pr_auc=float(average_precision_score(y, proba)) if two_classes else None,
        rows=len(y),
        positives=int(y.sum()),
    )


@dataclass(frozen=True)
class Champion:
    """The current champion, as far as the gate knows it."""

    version: str
    scores: Scores | None
    error: str | None = None
    """Why the champion could not be scored (then `scores` is None)."""


def judge(candidate: Scores, champion: Champion | None, gates: GatesSection) -> GateReport:
    """Decide the model gate. Pure: the same inputs always give the same report."""
    report = GateReport(
        GATE,
        summary={
            "held-out rows": candidate.rows,
            "positives in held-out": candidate.positives,
            "decision threshold": gates.decision_threshold,
        },
    )
    checks = report.checks
    if candidate.roc_auc is None:
        checks.append(
            CheckResult(
                "ROC AUC",
                Verdict.INCONCLUSIVE,
                expected=f">= {gates.min_auc:g}",
                detail="the held-out data has a single class; AUC is undefined",
            )
        )
    else:
        checks.append(_floor("ROC AUC", candidate.roc_auc, gates.min_auc))
    checks.append(
        _floor(f"precision at {gates.decision_threshold:g}", candidate.precision, gates.min_precision)
    )
    checks.append(_floor(f"recall at {gates.decision_threshold:g}", candidate.recall, gates.min_recall))

    if champion is None:
        checks.append(
            CheckResult(
                "vs champion",
                Verdict.PASS,
                observed="no champion yet",
                detail="first model: it becomes the champion if every gate passes",
            )
        )
        return report
    report.summary["champion"] = f"version {champion.version}"
    name = f"ROC AUC vs champion v{champion.version}"
    if champion.scores is None:
        checks.append(
            CheckResult(name, Verdict.ERROR, detail=f"champion could not be scored: {champion.error}")
        )
        return report
    report.summary["champion ROC AUC"] = champion.scores.roc_auc
    report.summary["champion precision"] = champion.scores.precision
    report.summary["champion recall"] = champion.scores.recall
    if candidate.roc_auc is None or champion.scores.roc_auc is None:
        checks.append(CheckResult(name, Verdict.INCONCLUSIVE, detail="AUC undefined on this held-out data"))
        return report
    tolerance = gates.max_regression_vs_champion
    floor = champion.scores.roc_auc - tolerance
    verdict = Verdict.PASS if candidate.roc_auc >= floor else Verdict.FAIL
    delta = candidate.roc_auc - champion.scores.roc_auc
    checks.append(
        CheckResult(
            name,
            verdict,
            observed=round(candidate.roc_auc, 4),
            expected=f">= {floor:.4f} (champion {champion.scores.roc_auc:.4f} - {tolerance:g})",
            detail=f"{delta:+.4f} vs champion",
        )
    )
    return report


def _floor(name: str, value: float, minimum: float) -> CheckResult:
    verdict = Verdict.PASS if value >= minimum else Verdict.FAIL
    detail = "" if verdict.ok else f"{minimum - value:.4f} below the floor"
    return CheckResult(name, verdict, observed=round(value, 4), expected=f">= {minimum:g}", detail=detail)
