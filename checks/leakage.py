"""Held-out rows the champion learned from: the comparison must not flatter it.

A challenger is scored on rows it never saw; the champion, retrained on other data, may have been
trained on some of those very rows (the split is seeded, but the data grew or changed). On rows it
learned from a model looks better than it is -- an AUC of 1.0000 -- and a better challenger is
stopped by a champion that memorised its test. So the training step records a digest of each
training row (features and target), and the model gate compares the two models only on held-out
rows the champion did not train on, when there are enough of them; otherwise it says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from launchbay.checks.report import CheckResult
from launchbay.checks.verdict import Verdict

TRAIN_ROWS_ARTIFACT = "launchbay/train_rows.npy"
"""Where a run keeps the digests of its training rows (MLflow artifact path)."""
CHECK = "held-out rows the champion never saw"


def digests(x: Any, y: Any) -> np.ndarray:
    """One 64-bit digest per row of features `x` with its target `y` (by content, not position)."""
    import pandas as pd

    frame = x.reset_index(drop=True).copy()
    frame["__target__"] = np.asarray(y)
    hashed: np.ndarray = pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)
    return hashed


@dataclass(frozen=True)
class Overlap:
    """How the held-out rows relate to the champion's training rows."""

    check: CheckResult
    unseen: np.ndarray | None
    """Mask of held-out rows to compare on (None: all of them)."""


def overlap(
    heldout: np.ndarray, champion_train: np.ndarray | None, champion: str, policy: str, min_unseen: int
) -> Overlap:
    """Judge the held-out rows against champion `champion`'s training rows.

    Args:
        heldout: digests of the held-out rows.
        champion_train: digests of the champion's training rows (None: not recorded).
        policy: "warn" or "fail" when too few unseen rows remain to compare on.
        min_unseen: the fewest unseen rows a comparison is made on.
    """
    if champion_train is None:
        detail = f"v{champion} was registered before launchbay kept training-row digests: not checked"
        return Overlap(CheckResult(CHECK, Verdict.PASS, observed="unknown", detail=detail), None)
    seen = np.isin(heldout, champion_train)
    n_seen, n = int(seen.sum()), len(heldout)
    unseen = n - n_seen
    observed, expected = f"{unseen} of {n}", f">= {min_unseen}"
    if n_seen == 0:
        return Overlap(CheckResult(CHECK, Verdict.PASS, observed=observed, expected=expected), None)
    said = f"{n_seen} of {n} held-out rows were in v{champion}'s training data"
    if unseen >= min_unseen:
        detail = f"{said}: both are compared on the {unseen} rows neither model saw"
        fair = CheckResult(CHECK, Verdict.PASS, observed=observed, expected=expected, detail=detail)
        return Overlap(fair, ~seen)
    verdict = Verdict.FAIL if policy == "fail" else Verdict.PASS
    detail = (
        f"{'' if policy == 'fail' else 'warning: '}{said}, only {unseen} unseen (gates.min_unseen_rows "
        f"{min_unseen}): the champion's scores are flattered; compared on all rows"
    )
    return Overlap(CheckResult(CHECK, verdict, observed=observed, expected=expected, detail=detail), None)
