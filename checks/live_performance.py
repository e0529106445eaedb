"""Live performance where labels come back, against what the model gate measured offline.

Every labelled answer is a loss of 0 or 1: a classifier's answer is wrong (its predicted class is
not the label), a regressor's misses by more than the 90th percentile of its held-out absolute
errors. Offline, on the held-out rows, that loss had a rate m0 (`Offline`); live, the model is
"as good as it was" while each labelled row's chance of a loss, given everything before, is at
most m = (the upper confidence bound of m0) * (1 + tolerance).

The bet against that null (a composite one: any rate up to m) is a mixture of betting
martingales, prod (1 + lam (z - m)) for a grid of lam in (0, 1/m): each factor has expectation at
most 1 while the rate is at most m, so their mean is a test supermartingale (Waudby-Smith &
Ramdas 2023, "Estimating means of bounded random variables by betting"). Changes that start any
time are caught as in `live_drift`: a new bet every `start_every` batches, the alarm on the sum of
the live bets' wealth, expected batches to a false alarm >= threshold * start_every.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

from launchbay.checks.live_drift import mean_log, new_bets, shiryaev_roberts

_FRACTIONS = np.array([0.9, 0.5, 0.25, 0.1, 0.05, 0.02])
"""The bets' sizes, as fractions of the largest safe one (1/m): a small error rise is found by the
small bets, a large one quickly by the large ones."""
LOSS_QUANTILE = 0.9
"""A regressor's answer is a loss when it misses by more than this quantile of its held-out misses."""


@dataclass(frozen=True)
class Offline:
    """The loss the model gate's held-out rows showed: `losses` of `rows`, and for a regressor the
    absolute error above which an answer counts as a loss."""

    losses: int
    rows: int
    miss_over: float | None = None

    @property
    def rate(self) -> float:
        return self.losses / self.rows if self.rows else 0.0

    def limit(self, tolerance: float = 0.1, confidence: float = 0.999) -> float:
        """The highest live loss rate still counted as "as good as offline"."""
        if self.rows == 0:
            return 1.0
        hi = (
            1.0
            if self.losses >= self.rows
            else float(scipy_stats.beta.ppf(confidence, self.losses + 1, self.rows - self.losses))
        )
        return min(hi * (1 + tolerance), 0.999)

    def to_dict(self) -> dict[str, Any]:
        return {"losses": self.losses, "rows": self.rows, "miss_over": self.miss_over}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Offline:
        miss = doc.get("miss_over")
        return cls(int(doc["losses"]), int(doc["rows"]), None if miss is None else float(miss))


@dataclass
class LossDetector:
    """The e-detector of a rise in the live loss rate over `limit`."""

    limit: float
    threshold: float
    start_every: int = 1
    keep: int = 144
    batches: int = 0
    labelled: int = 0
    losses: int = 0
    starts: list[int] = field(default_factory=list)
    log_wealth: np.ndarray = field(default_factory=lambda: np.zeros((0, len(_FRACTIONS))))
    """(bets, bet sizes): the log wealth of each bet at each size."""
    alarm_at: int | None = None

    def update(self, losses: int, rows: int) -> float:
        """Score one batch: `losses` of its `rows` labelled answers were losses."""
        (self.log_wealth,) = new_bets(
            self.batches, self.start_every, self.keep, self.starts, [self.log_wealth]
        )
        self.batches += 1
        self.labelled += rows
        self.losses += losses
        if rows:
            lam = _FRACTIONS / self.limit
            gain = losses * np.log1p(lam * (1 - self.limit)) + (rows - losses) * np.log1p(-lam * self.limit)
            self.log_wealth = self.log_wealth + gain
        stat = self.statistic()
        if stat >= self.threshold and self.alarm_at is None:
            self.alarm_at = self.batches
        return stat

    def statistic(self) -> float:
        """The sum over bets of each bet's wealth (the mean over its sizes)."""
        return shiryaev_roberts(mean_log(self.log_wealth)) if len(self.log_wealth) else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "limit": self.limit,
            "threshold": self.threshold,
            "start_every": self.start_every,
            "keep": self.keep,
            "batches": self.batches,
            "labelled": self.labelled,
            "losses": self.losses,
            "starts": self.starts,
            "log_wealth": self.log_wealth.tolist(),
            "alarm_at": self.alarm_at,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> LossDetector:
        logs = np.asarray(doc["log_wealth"], dtype=float).reshape(-1, len(_FRACTIONS))
        return cls(
            float(doc["limit"]),
            float(doc["threshold"]),
            int(doc["start_every"]),
            int(doc["keep"]),
            int(doc["batches"]),
            int(doc["labelled"]),
            int(doc["losses"]),
            list(doc["starts"]),
            logs,
            doc.get("alarm_at"),
        )
