"""How much a challenger's answers differ from the champion's on the same held-out rows.

A retrained model differs from the one before it by design: some answers change. The model gate
already scores both on the same rows, so launchbay *knows* how much they differ before either
sees live traffic. Shadow then judges harm, not change: a live difference clearly above this one
(training/serving skew, a broken feature, different preprocessing) fails; the difference a better
model brings does not.

The measures are those the gateway takes of live answers (`launchbay.rollout.local.gateway`),
computed the same way: disagreement (the predicted class differs; binary at the decision
threshold), the mean score shift (binary: of the positive class's probability; multiclass: half
the L1 distance of the class distributions) and, for regression, the mean relative difference
|c - s| / max(|c|, |s|). Repeated rows count once: bounds on a rate assume independent rows.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

OFFLINE_TAG = "launchbay.offline_difference"
"""The registry tag (and run tag) holding a version's `OfflineDifference` as JSON."""


@dataclass(frozen=True)
class OfflineDifference:
    """A challenger against the champion it was gated against, on distinct held-out rows."""

    against: str
    """The champion's version number."""
    rows: int
    """Distinct held-out rows compared (repeats counted once)."""
    disagreeing: int | None = None
    """Rows whose predicted class differs (classification)."""
    score_shift: float | None = None
    """Mean score shift (classification)."""
    relative_difference: float | None = None
    """Mean relative difference of the values (regression)."""

    @property
    def disagreement(self) -> float | None:
        """The share of rows whose predicted class differs (classification)."""
        if self.disagreeing is None or not self.rows:
            return None
        return self.disagreeing / self.rows

    def describe(self) -> str:
        """`v3 vs v2 offline: 15 of 500 distinct rows disagree (3.0%), mean score shift 0.021`."""
        if self.disagreeing is not None:
            share = self.disagreeing / self.rows if self.rows else 0.0
            said = f"{self.disagreeing} of {self.rows} distinct held-out rows disagree ({share:.1%})"
            if self.score_shift is not None:
                said += f", mean score shift {self.score_shift:.3g}"
            return said
        rel = self.relative_difference or 0.0
        return f"mean relative difference {rel:.3g} on {self.rows} distinct held-out rows"

    def to_json(self) -> str:
        """The tag's value."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> OfflineDifference | None:
        """Parse a tag's value; None when absent or not one of ours."""
        if not text:
            return None
        try:
            doc = json.loads(text)
            return cls(
                against=str(doc["against"]),
                rows=int(doc["rows"]),
                disagreeing=None if doc.get("disagreeing") is None else int(doc["disagreeing"]),
                score_shift=None if doc.get("score_shift") is None else float(doc["score_shift"]),
                relative_difference=(
                    None if doc.get("relative_difference") is None else float(doc["relative_difference"])
                ),
            )
        except (ValueError, KeyError, TypeError):
            return None


def distinct(rows: Any) -> np.ndarray:
    """Positions of the first occurrence of each distinct row of a DataFrame (by content)."""
    # numpy and pandas only here: the record itself is read where they are not installed (on-call's
    # lean install rolls back through the plan, which carries the shadow's limits).
    import numpy as np
    import pandas as pd

    hashed = pd.util.hash_pandas_object(rows, index=False).to_numpy()
    _, first = np.unique(hashed, return_index=True)
    return np.sort(first)


def difference(
    challenger: Any,
    champion: Any,
    *,
    against: str,
    task: str,
    challenger_classes: list[Any] | None = None,
    champion_classes: list[Any] | None = None,
    threshold: float = 0.5,
) -> OfflineDifference:
    """Compare two models' outputs on the same rows (already reduced to distinct ones).

    Args:
        challenger, champion: (n, k) class probabilities in each model's `classes` order, or (n,)
            values (regression).
        against: the champion's version number.
        challenger_classes, champion_classes: each model's class labels; matched by label, so two
            models that list their classes in different orders are compared class by class.
        threshold: binary: a row is predicted positive at or above this probability.
    """
    import numpy as np

    if task == "regression":
        c = np.asarray(challenger, dtype=float).reshape(-1)
        s = np.asarray(champion, dtype=float).reshape(-1)
        scale = np.maximum(np.abs(c), np.abs(s))
        rel = np.divide(np.abs(c - s), scale, out=np.zeros_like(c), where=scale > 0)
        return OfflineDifference(against, len(c), relative_difference=float(np.minimum(rel, 1.0).mean()))
    cp, sp = np.asarray(challenger, dtype=float), np.asarray(champion, dtype=float)
    c_labels = [str(x) for x in (challenger_classes or range(cp.shape[1]))]
    s_labels = [str(x) for x in (champion_classes or range(sp.shape[1]))]
    labels = sorted(set(c_labels) | set(s_labels))

    def aligned(p: np.ndarray, own: list[str]) -> np.ndarray:
        out = np.zeros((p.shape[0], len(labels)))
        for j, label in enumerate(own):
            out[:, labels.index(label)] = p[:, j]
        return out

    if task == "binary":
        # The second of each model's classes is its positive one, as served.
        c_pos, s_pos = cp[:, 1], sp[:, 1]
        c_pred = np.where(c_pos >= threshold, c_labels[1], c_labels[0])
        s_pred = np.where(s_pos >= threshold, s_labels[1], s_labels[0])
        shift = np.abs(c_pos - s_pos)
    else:
        ca, sa = aligned(cp, c_labels), aligned(sp, s_labels)
        c_pred = np.asarray(labels, dtype=object)[ca.argmax(axis=1)]
        s_pred = np.asarray(labels, dtype=object)[sa.argmax(axis=1)]
        shift = 0.5 * np.abs(ca - sa).sum(axis=1)
    return OfflineDifference(
        against,
        len(cp),
        disagreeing=int(np.sum(c_pred != s_pred)),
        score_shift=float(shift.mean()) if len(shift) else 0.0,
    )
