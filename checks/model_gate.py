"""The model gate: a candidate's quality on held-out data, against floors and against the champion.

Both models are scored on the *same* held-out rows, so the comparison measures the models, not
the luck of a split. What is measured follows the task (`model.task`): ROC AUC, precision, recall
and F1 for classification (macro averages, and accuracy, for multiclass), RMSE, MAE and R² for
regression. MLflow's `MetricThreshold` can only demand an improvement (`min_absolute_change` must
be positive); launchbay's rule is "at most `max_regression_vs_champion` worse than the champion",
so the comparison is made here, with the same vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from launchbay.checks.metric import METRICS as METRICS
from launchbay.checks.metric import Metric as Metric
from launchbay.checks.report import CheckResult, GateReport
from launchbay.checks.verdict import Verdict
from launchbay.config.model import GatesSection

GATE = "model gate"


@dataclass(frozen=True)
class Scores:
    """Quality of a model on one held-out set."""

    task: str
    values: dict[str, float | None]
    """Metric name -> value; None where it is undefined (AUC with a single class held out)."""
    rows: int
    class_counts: dict[str, int] = field(default_factory=dict)
    """Held-out rows per class (classification)."""

    def get(self, metric: str) -> float | None:
        """A metric's value, None when undefined or not measured for this task."""
        return self.values.get(metric)

    def as_metrics(self, prefix: str = "") -> dict[str, float]:
        """Numbers to log to MLflow (undefined values left out rather than logged as 0)."""
        return {f"{prefix}{k}": float(v) for k, v in self.values.items() if v is not None}


def score(
    output: Any, target: Any, *, task: str, classes: list[Any] | None = None, threshold: float = 0.5
) -> Scores:
    """Score a model's output on held-out rows.

    Args:
        output: (n, k) class probabilities in `classes` order (classification), or (n,) values.
        target: the true labels or values.
        task: binary, multiclass or regression.
        classes: the model's class labels (classification); binary: the second is positive.
        threshold: binary: the positive class is predicted at or above this probability.
    """
    if task == "regression":
        return _regression(np.asarray(output, dtype=float).reshape(-1), np.asarray(target, dtype=float))
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support, roc_auc_score

    proba = np.asarray(output, dtype=float)
    # Labels are compared as text: integer, boolean, float and string labels alike, and classes
    # read back from JSON metadata ("1") match the held-out column (1). An object array of ints
    # is a target type scikit-learn refuses ("unknown is not supported").
    labels = [label_text(c) for c in (classes if classes is not None else range(proba.shape[1]))]
    y = np.asarray([label_text(v) for v in np.asarray(target).reshape(-1).tolist()], dtype=str)
    counts = {c: int(np.sum(y == c)) for c in labels}
    present = sum(1 for n in counts.values() if n)
    values: dict[str, float | None]
    if task == "binary":
        from sklearn.metrics import average_precision_score

        positive = (y == labels[1]).astype(int)
        p1 = proba[:, 1]
        pred = (p1 >= threshold).astype(int)
        p, r, f, _ = precision_recall_fscore_support(positive, pred, average="binary", zero_division=0)
        two = present == 2
        values = {
            "roc_auc": float(roc_auc_score(positive, p1)) if two else None,
            "precision": float(p),
            "recall": float(r),
            "f1": float(f),
            "pr_auc": float(average_precision_score(positive, p1)) if two else None,
        }
        return Scores(task, values, len(y), counts)
    pred = np.asarray(labels, dtype=str)[proba.argmax(axis=1)]
    p, r, f, _ = precision_recall_fscore_support(y, pred, labels=labels, average="macro", zero_division=0)
    auc: float | None = None
    if present == len(labels):  # one-vs-rest AUC needs every class among the held-out rows
        auc = float(roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=labels))
    values = {
        "roc_auc": auc,
        "precision": float(p),
        "recall": float(r),
        "f1": float(f),
        "accuracy": float(accuracy_score(y, pred)),
    }
    return Scores(task, values, len(y), counts)


def label_text(value: Any) -> str:
    """A class label as text, the same for 1, 1.0, np.int64(1) and "1"; True stays "True"."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, float, np.integer, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _regression(pred: np.ndarray, y: np.ndarray) -> Scores:
    err = pred - y
    total = float(np.sum((y - y.mean()) ** 2))
    values: dict[str, float | None] = {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "r2": 1.0 - float(np.sum(err**2)) / total if total > 0 else None,
    }
    return Scores("regression", values, len(y))


@dataclass(frozen=True)
class Champion:
    """The current champion, as far as the gate knows it."""

    version: str
    scores: Scores | None
    error: str | None = None
    """Why the champion could not be scored (then `scores` is None)."""


def floors(gates: GatesSection, task: str) -> list[tuple[str, float, bool]]:
    """(metric, limit, is_minimum) for every floor or ceiling this task's gate applies."""
    if task == "regression":
        limits = [("rmse", gates.max_rmse, False), ("mae", gates.max_mae, False), ("r2", gates.min_r2, True)]
        return [(m, v, low) for m, v, low in limits if v is not None]
    return [
        ("roc_auc", gates.min_auc, True),
        ("precision", gates.min_precision, True),
        ("recall", gates.min_recall, True),
        ("f1", gates.min_f1, True),
    ]


def judge(
    candidate: Scores,
    champion: Champion | None,
    gates: GatesSection,
    vs_champion: tuple[str, ...] = ("roc_auc",),
    compared: Scores | None = None,
) -> GateReport:
    """Decide the model gate. Pure: the same inputs always give the same report.

    Args:
        vs_champion: the metrics the candidate must not lose against the champion.
        compared: the candidate's scores on the rows the champion was scored on, when those are
            not all the held-out rows (rows the champion trained on are left out: `leakage`).
    """
    task = candidate.task
    report = GateReport(GATE, summary={"task": task, "held-out rows": candidate.rows})
    if task == "binary":
        counts = list(candidate.class_counts.values())
        report.summary["positives in held-out"] = counts[1] if len(counts) == 2 else 0
        report.summary["decision threshold"] = gates.decision_threshold
    elif task == "multiclass":
        report.summary["held-out rows per class"] = candidate.class_counts
    suffix = f" at {gates.decision_threshold:g}" if task == "binary" else ""
    for metric, limit, minimum in floors(gates, task):
        name = METRICS[metric].label + ("" if metric == "roc_auc" else suffix)
        report.checks.append(_limit(name, candidate.get(metric), limit, minimum))

    if champion is None:
        report.checks.append(
            CheckResult(
                "vs champion",
                Verdict.PASS,
                observed="no champion yet",
                detail="first model: it becomes the champion if every gate passes",
            )
        )
        return report
    report.summary["champion"] = f"version {champion.version}"
    if champion.scores is None:
        report.checks.append(
            CheckResult(
                f"vs champion v{champion.version}",
                Verdict.ERROR,
                detail=f"champion could not be scored: {champion.error}",
            )
        )
        return report
    for metric, value in champion.scores.values.items():
        if value is not None and metric in METRICS:
            report.summary[f"champion {METRICS[metric].label}"] = value
    if compared is not None:
        report.summary["compared with the champion on"] = f"{compared.rows} rows neither model saw"
    for metric in vs_champion:
        report.checks.append(
            compare(metric, compared or candidate, champion, gates.max_regression_vs_champion)
        )
    return report


def compare(metric: str, candidate: Scores, champion: Champion, tolerance: float) -> CheckResult:
    """One metric of the candidate against the champion's on the same rows."""
    assert champion.scores is not None
    m = METRICS[metric]
    name = f"{m.label} vs champion v{champion.version}"
    mine, theirs = candidate.get(metric), champion.scores.get(metric)
    if mine is None or theirs is None:
        return CheckResult(name, Verdict.INCONCLUSIVE, detail=f"{m.label} undefined on this held-out data")
    if m.bounded:
        limit = theirs - tolerance if m.higher_is_better else theirs + tolerance
        allowed = f"{tolerance:g}"
    else:
        limit = theirs * (1 + tolerance) if not m.higher_is_better else theirs * (1 - tolerance)
        allowed = f"{tolerance:.0%}"
    ok = mine >= limit if m.higher_is_better else mine <= limit
    sign = ">=" if m.higher_is_better else "<="
    op = "-" if m.higher_is_better else "+"
    return CheckResult(
        name,
        Verdict.PASS if ok else Verdict.FAIL,
        observed=round(mine, 4),
        expected=f"{sign} {limit:.4f} (champion {theirs:.4f} {op} {allowed})",
        detail=f"{mine - theirs:+.4f} vs champion",
    )


def _limit(name: str, value: float | None, limit: float, minimum: bool) -> CheckResult:
    sign = ">=" if minimum else "<="
    if value is None:
        return CheckResult(
            name,
            Verdict.INCONCLUSIVE,
            expected=f"{sign} {limit:g}",
            detail="undefined on this held-out data (a single class held out?)",
        )
    ok = value >= limit if minimum else value <= limit
    detail = "" if ok else f"{abs(limit - value):.4f} {'below the floor' if minimum else 'above the ceiling'}"
    return CheckResult(
        name,
        Verdict.PASS if ok else Verdict.FAIL,
        observed=round(value, 4),
        expected=f"{sign} {limit:g}",
        detail=detail,
    )
