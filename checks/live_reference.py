"""What a model's live traffic is compared with: measured once, offline, when it is evaluated.

The evaluate step bins every feature at the model's *training* rows, bins the model's own answers
on the held-out rows (a binary classifier's positive-class score, a multiclass one's predicted
class, a regressor's value) and counts its held-out losses (`live_performance`). The document is
logged with the run (`REFERENCE_ARTIFACT`) and read back by launchbay's monitor for whichever
version is the champion, so live drift is judged against what the model was trained on, and live
answers against what it answered offline -- not against an older model's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from launchbay.checks.live_drift import Bins, binned
from launchbay.checks.live_performance import LOSS_QUANTILE, Offline
from launchbay.checks.model_gate import label_text

REFERENCE_ARTIFACT = "monitoring/reference.json"
"""Where the evaluate step logs the document, in the run's artefacts."""
ANSWER = "(answer)"
"""The name the model's answer is binned under, beside the features."""


@dataclass(frozen=True)
class Reference:
    """The features' and the answers' reference bins, and the offline loss."""

    task: str
    features: list[Bins]
    answer: Bins | None
    offline: Offline | None
    decision_threshold: float = 0.5

    def to_json(self) -> str:
        return json.dumps(
            {
                "task": self.task,
                "features": [b.to_dict() for b in self.features],
                "answer": self.answer.to_dict() if self.answer else None,
                "offline": self.offline.to_dict() if self.offline else None,
                "decision_threshold": self.decision_threshold,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Reference:
        """Parse `to_json`'s form (ValueError on anything else)."""
        try:
            doc = json.loads(text)
            return cls(
                str(doc["task"]),
                [Bins.from_dict(b) for b in doc["features"]],
                Bins.from_dict(doc["answer"]) if doc.get("answer") else None,
                Offline.from_dict(doc["offline"]) if doc.get("offline") else None,
                float(doc.get("decision_threshold", 0.5)),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a monitoring reference: {exc}") from None

    def answer_value(self, answer: Any) -> Any:
        """The value of one served answer that is binned (None: not one of this task's answers)."""
        if not isinstance(answer, dict):
            return None
        if self.task == "binary":
            return answer.get("score")
        return answer.get("prediction")

    def loss(self, answer: Any, label: Any) -> int | None:
        """1 when a served answer is a loss against its label, 0 when not, None when either is
        unusable (a regressor's label that is no number)."""
        if not isinstance(answer, dict) or label is None:
            return None
        predicted = answer.get("prediction")
        if self.task != "regression":
            return int(label_text(predicted) != label_text(label))
        try:
            miss = abs(float(predicted) - float(label))  # type: ignore[arg-type]  # checked here
        except (TypeError, ValueError):
            return None
        limit = self.offline.miss_over if self.offline and self.offline.miss_over is not None else 0.0
        return int(miss > limit)


def build(
    task: str,
    train: Mapping[str, Any],
    categorical: Mapping[str, bool],
    output: Any,
    classes: list[Any] | None,
    target: Any,
    decision_threshold: float = 0.5,
    bins: int = 10,
) -> Reference:
    """The reference of a model: its training rows' features (`train`: column -> values), its
    held-out `output` ((n, k) probabilities or (n,) values) and their `target`."""
    features = [
        binned(name, list(values), categorical=categorical[name], bins=bins) for name, values in train.items()
    ]
    y = np.asarray(target).reshape(-1)
    if task == "regression":
        values = np.asarray(output, dtype=float).reshape(-1)
        miss = np.abs(values - y.astype(float))
        over = float(np.quantile(miss, LOSS_QUANTILE)) if miss.size else 0.0
        offline = Offline(int(np.sum(miss > over)), int(miss.size), over)
        answer = binned(ANSWER, values.tolist(), categorical=False, bins=bins)
    else:
        proba = np.asarray(output, dtype=float)
        labels = [label_text(c) for c in (classes if classes is not None else range(proba.shape[1]))]
        if task == "binary":
            predicted = np.where(proba[:, 1] >= decision_threshold, labels[1], labels[0])
            answer = binned(ANSWER, proba[:, 1].tolist(), categorical=False, bins=bins)
        else:
            predicted = np.asarray(labels, dtype=object)[proba.argmax(axis=1)]
            answer = binned(ANSWER, predicted.tolist(), categorical=True)
        wrong = sum(1 for p, t in zip(predicted.tolist(), y.tolist(), strict=True) if p != label_text(t))
        offline = Offline(wrong, len(y))
    return Reference(task, features, answer, offline, decision_threshold)
