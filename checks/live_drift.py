"""Live drift of a model's inputs and answers, detected with a stated false-alarm rate.

The fixed-threshold practice (a PSI or a KS test per feature on every hourly window) raises false
alarms at a rate that grows with features x windows, and nobody can say how often. Here each
feature is an *e-process* -- a bet against "nothing moved" whose wealth, under that hypothesis,
stays below 1 in expectation however often it is looked at -- and the bets of all features share
one false-alarm budget.

* **What "nothing moved" means.** Each feature is binned at its reference's quantiles (numeric;
  open outer bins, plus a bin for missing values) or by its reference categories (plus "other" and
  missing). A reference of n rows vouches for each bin's share only up to its sampling error, and
  a share that moves a little is not drift worth a retrain: the null is a *band* per bin, the
  reference share widened by its confidence interval and by `tolerance` (relative). Live traffic
  is "not drifted" while each row's distribution over the bins -- given everything before it --
  lies in the band (so it may wander inside the band, as real traffic does).
* **The bet.** Against that composite null the alternative is a Dirichlet mixture over the bins
  (a predictive that learns the live shares), and each row is scored by q(bin) / p*(bin), where p*
  is the reverse information projection of q onto the band. For a band (a convex set) that
  ratio's expectation is at most 1 under *every* distribution in it (the KKT argument in
  `project`), so the running product is a test supermartingale.
* **Changes that start any time** (an e-detector, Shin, Ramdas & Rinaldo 2022): a new bet starts
  every `start_every` batches; the alarm statistic is the sum of the live bets' wealth (the
  Shiryaev-Roberts form). That sum minus the number of bets started is a supermartingale under the
  null, so the expected number of batches before a false alarm is at least
  `threshold * start_every`; keeping only the newest bets only makes the sum smaller.
* **Features share the budget**: a bet's wealth is the *mean* of its per-feature wealths (a mean
  of test supermartingales is one), so adding features does not add false alarms.
* **Repeated rows count once** (`launchbay.rollout.monitor` drops a row it has seen recently): one
  client sending the same row a thousand times is not a population that moved.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

MISSING = "(missing)"
OTHER = "(other)"
_PRIOR = 2.0
"""The Dirichlet prior's total weight, centred on the reference shares (a weak prior: two rows)."""


@dataclass(frozen=True)
class Bins:
    """How one feature is binned, and how many reference rows fell in each bin."""

    name: str
    counts: tuple[int, ...]
    edges: tuple[float, ...] = ()
    """Numeric: the interior quantile edges (bins: below the first, ..., above the last, missing)."""
    categories: tuple[str, ...] = ()
    """Categorical: the reference's categories (bins: each, other, missing)."""

    @property
    def categorical(self) -> bool:
        return bool(self.categories)

    @property
    def reference(self) -> np.ndarray:
        """The reference's share of each bin."""
        counts = np.asarray(self.counts, dtype=float)
        return np.asarray(counts / max(counts.sum(), 1.0))

    def index(self, values: Sequence[Any]) -> np.ndarray:
        """The bin of each value (missing values in the last bin)."""
        k = len(self.counts)
        if self.categorical:
            where = {c: i for i, c in enumerate(self.categories)}
            return np.array(
                [k - 1 if _missing(v) else where.get(str(v), k - 2) for v in values], dtype=np.int64
            )
        out = np.full(len(values), k - 1, dtype=np.int64)
        numbers = np.array([np.nan if _missing(v) else _number(v) for v in values], dtype=float)
        present = ~np.isnan(numbers)
        out[present] = np.searchsorted(np.asarray(self.edges), numbers[present], side="right")
        return out

    def band(self, tolerance: float = 0.1, confidence: float = 0.999) -> tuple[np.ndarray, np.ndarray]:
        """The live shares counted as no drift: (low, high) per bin.

        Args:
            tolerance: how far, relative to its reference share, a bin's live share may move before
                it counts as drift (0.1: a bin of 10% may hold 9-11% of live rows), on top of the
                reference's own sampling error.
            confidence: of all bins' Clopper-Pearson intervals on the reference's shares together
                (Bonferroni): the band the reference vouches for.
        """
        counts = np.asarray(self.counts, dtype=float)
        n, k = counts.sum(), len(counts)
        alpha = (1 - confidence) / k
        with np.errstate(all="ignore"):
            lo = np.where(counts > 0, scipy_stats.beta.ppf(alpha / 2, counts, n - counts + 1), 0.0)
            hi = np.where(counts < n, scipy_stats.beta.ppf(1 - alpha / 2, counts + 1, n - counts), 1.0)
        low = np.clip(np.nan_to_num(lo) * (1 - tolerance), 0.0, 1.0)
        high = np.clip(np.nan_to_num(hi, nan=1.0) * (1 + tolerance), 0.0, 1.0)
        return low, high

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "counts": list(self.counts),
            "edges": list(self.edges),
            "categories": list(self.categories),
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Bins:
        return cls(
            str(doc["name"]),
            tuple(int(c) for c in doc["counts"]),
            tuple(float(e) for e in doc.get("edges", ())),
            tuple(str(c) for c in doc.get("categories", ())),
        )


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _number(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan  # a non-number where a number belongs lands with the missing ones


def binned(
    name: str, values: Sequence[Any], *, categorical: bool, bins: int = 10, max_categories: int = 30
) -> Bins:
    """Bin a feature at its reference values: quantile edges (numeric) or its most common
    categories (categorical), and the reference's count in each bin."""
    if len(values) == 0:
        raise ValueError(f"{name}: the reference has no rows")
    if categorical:
        counts: dict[str, int] = {}
        for v in values:
            if not _missing(v):
                counts[str(v)] = counts.get(str(v), 0) + 1
        categories = tuple(sorted(counts, key=lambda c: (-counts[c], c))[:max_categories])
        shell = Bins(name, (0,) * (len(categories) + 2), categories=categories)
    else:
        numbers = np.array([np.nan if _missing(v) else _number(v) for v in values], dtype=float)
        present = numbers[~np.isnan(numbers)]
        qs = (
            np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))
            if present.size
            else np.array([])
        )
        shell = Bins(name, (0,) * (len(qs) + 2), edges=tuple(float(q) for q in qs))
    ref_counts = np.bincount(shell.index(list(values)), minlength=len(shell.counts))
    return Bins(name, tuple(int(c) for c in ref_counts), shell.edges, shell.categories)


def project(q: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """The reverse information projection of predictive(s) `q` onto the band: the p with
    low <= p <= high, sum p = 1, closest to q in KL(q || p). Works on the last axis.

    Its KKT conditions are p_j = clip(q_j / lam, low_j, high_j) for one lam > 0 (found by bisection).
    So q/p equals lam inside the band, is above lam only where p sits at `high` and below it only
    where p sits at `low`; for any P in the band, sum_j (P_j - p_j) (q_j/p_j - lam) <= 0, hence
    E_P[q/p] <= sum_j p_j q_j / p_j = 1: the score is an e-value under every P in the band.
    """
    q = np.asarray(q, dtype=float)
    # sum_j clip(q_j / lam) is decreasing in lam, 1 somewhere in [min q/high, max q/low]: bisect
    # in log space (45 halvings leave lam within a factor 1 + 1e-9 of exact).
    lo_lam = np.min(q / np.maximum(high, 1e-12), axis=-1, keepdims=True) * 0.5
    hi_lam = np.max(q / np.maximum(low, 1e-12), axis=-1, keepdims=True) * 2.0
    for _ in range(45):
        mid = np.sqrt(lo_lam * hi_lam)
        total = np.clip(q / mid, low, high).sum(axis=-1, keepdims=True)
        too_much = total > 1
        lo_lam = np.where(too_much, mid, lo_lam)
        hi_lam = np.where(too_much, hi_lam, mid)
    p = np.clip(q / np.sqrt(lo_lam * hi_lam), low, high)
    return np.asarray(p / p.sum(axis=-1, keepdims=True))


def new_bets(
    batches: int, start_every: int, keep: int, starts: list[int], arrays: list[np.ndarray]
) -> list[np.ndarray]:
    """Start a bet when one is due -- its start in `starts`, a zero row on each (bets, ...) array --
    dropping the oldest past `keep`; the arrays as they are now."""
    if batches % start_every:
        return arrays
    starts.append(batches)
    grown = [np.vstack([a, np.zeros((1, *a.shape[1:]))]) for a in arrays]
    if len(starts) > keep:
        del starts[0]
        grown = [a[1:] for a in grown]
    return grown


def mean_log(logs: np.ndarray) -> np.ndarray:
    """Per bet (row), the log of the mean of its wealths (a bet spread over features or sizes)."""
    top = logs.max(axis=1, keepdims=True)
    return np.asarray(np.log(np.mean(np.exp(logs - top), axis=1)) + top[:, 0])


def shiryaev_roberts(per_bet: np.ndarray) -> float:
    """The alarm statistic: the sum of the bets' wealth (0 with no bet; capped at e^700, finite)."""
    if not len(per_bet):
        return 0.0
    top = float(per_bet.max())
    return float(math.exp(min(top, 700.0)) * np.exp(per_bet - top).sum())


@dataclass
class Detector:
    """The e-detector over several features (inputs and the model's answers), one budget.

    Args:
        bins: one per feature.
        threshold: the alarm level of the summed wealth; expected batches before a false alarm
            >= threshold * start_every.
        start_every: batches between two new bets.
        keep: bets kept (the oldest dropped first; a smaller sum, so never more alarms).
    """

    bins: list[Bins]
    threshold: float
    tolerance: float = 0.1
    confidence: float = 0.999
    start_every: int = 1
    keep: int = 144
    batches: int = 0
    starts: list[int] = field(default_factory=list)
    """The batch each kept bet started at."""
    counts: list[np.ndarray] = field(default_factory=list)
    """Per feature: (bets, bins) live rows per bin since each bet started."""
    log_wealth: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    """(bets, features): the log of each bet's wealth on each feature."""
    alarm_at: int | None = None

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [np.zeros((0, len(b.counts))) for b in self.bins]
        if self.log_wealth.shape[1:] != (len(self.bins),):
            self.log_wealth = np.zeros((0, len(self.bins)))
        self._prior = [_PRIOR * np.maximum(np.asarray(b.reference), 1e-3) for b in self.bins]
        self._band = [b.band(self.tolerance, self.confidence) for b in self.bins]

    def update(self, batch: Mapping[str, np.ndarray]) -> float:
        """Score one batch (feature -> bin indices of its rows) and return the alarm statistic.

        A feature absent from the batch (or with no rows) leaves its wealth as it was."""
        *self.counts, self.log_wealth = new_bets(
            self.batches, self.start_every, self.keep, self.starts, [*self.counts, self.log_wealth]
        )
        self.batches += 1
        for f, b in enumerate(self.bins):
            idx = batch.get(b.name)
            if idx is None or len(idx) == 0:
                continue
            k = len(b.counts)
            seen = np.bincount(np.asarray(idx, dtype=np.int64), minlength=k)[:k]
            q = self.counts[f] + self._prior[f]
            q = q / q.sum(axis=1, keepdims=True)  # each bet's predictive, from before this batch
            p = project(q, *self._band[f])
            self.log_wealth[:, f] += (seen * (np.log(q) - np.log(p))).sum(axis=1)
            self.counts[f] = self.counts[f] + seen
        stat = self.statistic()
        if stat >= self.threshold and self.alarm_at is None:
            self.alarm_at = self.batches
        return stat

    def statistic(self) -> float:
        """The sum over bets of each bet's mean wealth over the features."""
        return shiryaev_roberts(mean_log(self.log_wealth)) if len(self.log_wealth) else 0.0

    def evidence(self) -> dict[str, float]:
        """Each feature's strongest wealth over the bets (log10): which features moved."""
        if not len(self.log_wealth):
            return {b.name: 0.0 for b in self.bins}
        best = self.log_wealth.max(axis=0) / math.log(10)
        return {b.name: round(float(best[f]), 3) for f, b in enumerate(self.bins)}

    def live_shares(self, feature: str) -> list[float]:
        """The shares of `feature`'s bins since the oldest kept bet started."""
        f = [b.name for b in self.bins].index(feature)
        counts = self.counts[f][0] if len(self.counts[f]) else np.zeros(len(self.bins[f].counts))
        total = float(counts.sum())
        return [round(float(c) / total, 4) for c in counts] if total else [0.0] * len(counts)

    def to_dict(self) -> dict[str, Any]:
        """The detector's whole state (a restarted monitor resumes its bets)."""
        return {
            "bins": [b.to_dict() for b in self.bins],
            "threshold": self.threshold,
            "tolerance": self.tolerance,
            "confidence": self.confidence,
            "start_every": self.start_every,
            "keep": self.keep,
            "batches": self.batches,
            "starts": self.starts,
            "counts": [c.tolist() for c in self.counts],
            "log_wealth": self.log_wealth.tolist(),
            "alarm_at": self.alarm_at,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Detector:
        bins = [Bins.from_dict(b) for b in doc["bins"]]
        counts = [
            np.asarray(c, dtype=float).reshape(-1, len(b.counts))
            for c, b in zip(doc["counts"], bins, strict=True)
        ]
        logs = np.asarray(doc["log_wealth"], dtype=float).reshape(-1, len(bins))
        return cls(
            bins,
            float(doc["threshold"]),
            float(doc["tolerance"]),
            float(doc["confidence"]),
            int(doc["start_every"]),
            int(doc["keep"]),
            int(doc["batches"]),
            list(doc["starts"]),
            counts,
            logs,
            doc.get("alarm_at"),
        )


def threshold_for(false_alarm_every_s: float, batch_s: float, start_every: int) -> float:
    """The alarm level that makes the expected time to a false alarm at least `false_alarm_every_s`
    when a batch covers `batch_s` seconds and a bet starts every `start_every` batches."""
    return max(false_alarm_every_s / (batch_s * start_every), 1.0)
