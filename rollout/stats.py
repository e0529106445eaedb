"""Confidence for proportions that are looked at every tick: anytime-valid bounds.

A rollout looks at its error rate and its shadow disagreement every second. A fixed-sample
interval (Wilson, Clopper-Pearson) looked at that often is wrong far more often than its level
says; a confidence *sequence* is valid at every look at once. This one is the beta-binomial
mixture (Robbins' method of mixtures, as in Howard et al., "Time-uniform, nonparametric,
nonasymptotic confidence sequences", 2021): after `k` events in `n` trials, the bound holds the
true rate with probability >= `confidence` simultaneously for every n, so a rollout may decide the
moment a bound clears its limit.

    p is in the sequence  <=>  B(a + k, b + n - k) / B(a, b)  <  p^k (1 - p)^(n - k) / alpha

A Beta(1/2, 1/2) mixture (Jeffreys) keeps the bounds tight for small rates, which is where the
limits of a rollout sit (1% errors, 2% disagreement).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

_A = _B = 0.5  # the mixing prior: Jeffreys


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
            f"{self.events} of {self.trials} ({self.rate:.1%}), {self.confidence:.0%} anytime bound "
            f"[{self.low:.1%}, {self.high:.1%}]"
        )


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def rate_bounds(events: int, trials: int, confidence: float = 0.95) -> Bounds:
    """The beta-binomial confidence sequence's interval after `events` in `trials`."""
    if trials <= 0:
        return Bounds(0, 0, 0.0, 1.0, confidence)
    k, n = min(max(events, 0), trials), trials
    threshold = _log_beta(_A + k, _B + n - k) - _log_beta(_A, _B) - math.log(1 / (1 - confidence))

    def inside(p: float) -> bool:
        # log p^k (1-p)^(n-k) > log mixture - log alpha  <=>  p is not rejected
        log_lik = (k * math.log(p) if k else 0.0) + ((n - k) * math.log1p(-p) if n - k else 0.0)
        return log_lik > threshold

    mle = k / n
    centre = min(max(mle, 1e-12), 1 - 1e-12)
    low = 0.0 if k == 0 else _edge(inside, 1e-12, centre)
    high = 1.0 if k == n else _edge(inside, 1 - 1e-12, centre)
    return Bounds(k, n, low, high, confidence)


def _edge(inside: object, outside_end: float, inside_point: float) -> float:
    """Bisect between a rejected end and an accepted point for the interval's edge."""
    assert callable(inside)
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
