"""Confidence for proportions that are looked at every tick: anytime-valid bounds.

A rollout looks at its error rate and its shadow disagreement every second. A fixed-sample
interval (Wilson, Clopper-Pearson) looked at that often is wrong far more often than its level
says; a confidence *sequence* is valid at every look at once, so a rollout may decide the moment a
bound clears its limit.

Each bound is a one-sided sequential test (Robbins' method of mixtures; Howard et al.,
"Time-uniform, nonparametric, nonasymptotic confidence sequences", 2021). The lower bound is the
largest rate p0 that the evidence rejects as too low: under "the true rate is <= p0" the average of
the likelihood ratios for the alternatives p0 x r (r in `_RATIOS`) is a nonnegative
supermartingale, so by Ville's inequality it ever exceeds 1/alpha with probability <= alpha,
however often it is looked at. The upper bound mirrors it with the alternatives p0 / r.

Why these alternatives: a rollout's question is "is the candidate 1.5x-10x over its limit", not
"what is the rate to the third decimal"; concentrating the mixture there decides 10% disagreement
against a 5% limit on ~180 rows, where a Jeffreys mixture over all of [0, 1] needs ~300 (3.6 s of
traffic at 50 rows/s instead of 6 s). `tests/unit/rollout/test_stats.py` checks the level.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

_RATIOS = ((1.5, 1 / 3), (2.0, 1 / 3), (3.0, 1 / 6), (10.0, 1 / 6))
"""The alternatives each bound's test mixes, as multiples (lower bound) or fractions (upper) of
the hypothesised rate, with their weights: most on 1.5x-2x, where a decision takes the most
evidence; 10x keeps a candidate failing every request a matter of two or three requests."""
_EDGE = 1e-12


@dataclass(frozen=True)
class Bounds:
    """An anytime-valid confidence interval for a rate."""

    events: int
    trials: int
    low: float
    high: float
    confidence: float

    @property
    def rate(self) -> float:
        """The point estimate (events / trials; 0 with no trials)."""
        return self.events / self.trials if self.trials else 0.0

    def describe(self) -> str:
        """`3 of 59 (5.1%), 95% bound [0.9%, 17.8%]`, for people."""
        return (
            f"{self.events} of {self.trials} ({self.rate:.1%}), {self.confidence:.0%} anytime bounds "
            f"[{self.low:.1%}, {self.high:.1%}]"
        )


def _log_evidence(k: int, n: int, p0: float, alternatives: list[tuple[float, float]]) -> float:
    """log of the weighted mean likelihood ratio of `alternatives` ((rate, weight) pairs) against
    p0 after k events in n trials."""
    logs = [
        math.log(w)
        + (k * math.log(p / p0) if k else 0.0)
        + ((n - k) * math.log((1 - p) / (1 - p0)) if n - k else 0.0)
        for p, w in alternatives
    ]
    top = max(logs)
    return top + math.log(sum(math.exp(x - top) for x in logs))


def _rejected_low(k: int, n: int, p0: float, level: float) -> bool:
    """Whether the evidence says, with confidence, that the rate is above p0."""
    above = [(min(p0 * r, 1 - _EDGE), w) for r, w in _RATIOS]
    return _log_evidence(k, n, p0, above) >= level


def _rejected_high(k: int, n: int, p0: float, level: float) -> bool:
    """Whether the evidence says, with confidence, that the rate is below p0."""
    below = [(p0 / r, w) for r, w in _RATIOS]
    return _log_evidence(k, n, p0, below) >= level


def rate_bounds(events: int, trials: int, confidence: float = 0.95) -> Bounds:
    """Anytime-valid one-sided bounds on a rate after `events` in `trials`, each at `confidence`."""
    if trials <= 0:
        return Bounds(0, 0, 0.0, 1.0, confidence)
    k, n = min(max(events, 0), trials), trials
    level = math.log(1 / (1 - confidence))
    mle = min(max(k / n, _EDGE), 1 - _EDGE)
    # Both tests get more evidence the further p0 is from the estimate: bisect for the edges.
    low = _edge(lambda p: not _rejected_low(k, n, p, level), _EDGE, mle)
    high = _edge(lambda p: not _rejected_high(k, n, p, level), 1 - _EDGE, mle)
    low = 0.0 if low <= 2 * _EDGE else low
    high = 1.0 if high >= 1 - 2 * _EDGE else high
    return Bounds(k, n, low, high, confidence)


def _edge(inside: Callable[[float], bool], outside_end: float, inside_point: float) -> float:
    """Bisect between a rejected end and an accepted point for the interval's edge."""
    if inside(outside_end):
        return outside_end
    lo, hi = outside_end, inside_point  # lo: rejected, hi: accepted
    for _ in range(60):
        mid = (lo + hi) / 2
        if inside(mid):
            hi = mid
        else:
            lo = mid
    return hi


@dataclass(frozen=True)
class Judgement:
    """A rate against an upper limit: over it with confidence, within it, or not known yet."""

    verdict: str
    """"over" (the lower bound is over the limit), "within" (the estimate is within it), or
    "unsure" (the estimate is over, the evidence not yet sufficient)."""
    bounds: Bounds


def against_limit(events: int, trials: int, limit: float, confidence: float = 0.95) -> Judgement:
    """Judge a rate against `limit` the way a rollout must: blame only with confidence."""
    b = rate_bounds(events, trials, confidence)
    if b.low > limit:
        return Judgement("over", b)
    if b.rate <= limit:
        return Judgement("within", b)
    return Judgement("unsure", b)
