"""Analysis of one step: the candidate's measurements against its SLOs, against stable, and in shadow.

A pure function of measurements and thresholds, so every decision can be replayed from the ledger.
The rules, in the order a release manager reads them:

* the candidate needs `min_samples` requests in the window, else INCONCLUSIVE (the step waits);
* a query that failed is ERROR; a query with no data is INCONCLUSIVE -- never a pass;
* absolute SLOs: error rate and p95 latency -- an SLO stable breaks too in the same window holds
  the step instead of blaming the candidate (`slo.when_stable_breaks`);
* relative to stable over the same window: p95 ratio and error-rate ratio;
* in shadow: prediction disagreement with stable on the same distinct rows, and the mean score
  shift (classification); the mean relative difference of the values (regression) -- each against
  what the model gate measured between the two offline, plus a margin (`rollout.shadow`);
* rates (errors, disagreement) fail only when an anytime-valid bound (`rollout.stats`) is over
  the limit at `confidence`: 3 differing rows in 59 against a 5% limit waits for more rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from launchbay.checks.report import CheckResult
from launchbay.checks.verdict import Verdict, worst
from launchbay.config.rollout import MetricSection, SloSection
from launchbay.rollout.engine import stats
from launchbay.rollout.metrics.base import Measurement, ShadowStats, VersionStats

# Below this error rate a ratio against stable means nothing (0.2% vs 0.05% is not "4x worse").
ERROR_RATE_FLOOR = 0.002


@dataclass(frozen=True)
class Thresholds:
    """The limits an analysis applies (from `rollout:` in launchbay.yaml)."""

    slo: SloSection
    min_samples: int
    max_disagreement: float = 0.05
    max_score_shift: float = 0.1
    max_relative_difference: float = 0.1
    shadow_basis: str = ""
    """Where the shadow limits come from (the offline difference), said with each shadow check."""
    task: str = "binary"
    """What the answers are: classes (binary, multiclass) or values (regression)."""
    confidence: float = 0.95
    """Rates (errors, disagreement) blame the candidate only when an anytime-valid bound clears
    the limit at this confidence (`rollout.stats`); looking every tick does not erode it."""
    metrics: dict[str, MetricSection] = field(default_factory=dict)
    """The user's own metrics, judged in every canary analysis."""
    window: float = 0.0
    """Seconds the measurements cover (0: unknown): a count over it is a rate, and an ETA."""
    full_window: float = 0.0
    """Seconds the window covers once the release is older than it (what a rate can fill)."""


@dataclass
class AnalysisResult:
    """The verdict of one analysis and every number behind it."""

    checks: list[CheckResult] = field(default_factory=list)
    compared_with: str = "stable"
    """What "stable" in the checks is: `stable` (the long-running server) or `baseline` (a fresh
    server of stable's version at the candidate's share: rollout.baseline)."""

    @property
    def verdict(self) -> Verdict:
        """The worst verdict of the checks."""
        return worst(c.verdict for c in self.checks)

    @property
    def failing(self) -> list[CheckResult]:
        """The checks that failed, in the order they were made."""
        return [c for c in self.checks if c.verdict is Verdict.FAIL]

    def waiting(self) -> str:
        """What an undecided analysis waits for: its INCONCLUSIVE checks in one line."""
        return "; ".join(
            f"{c.name}: {c.observed} of {c.expected}" + (f" ({c.detail})" if c.detail else "")
            for c in self.checks
            if c.verdict is Verdict.INCONCLUSIVE
        )

    def why(self) -> str:
        """The failing checks in one line: `check: observed X, expected Y; ...`."""
        return "; ".join(f"{c.name}: observed {c.observed}, expected {c.expected}" for c in self.failing)

    def evidence(self) -> dict[str, Any]:
        """A JSON-ready summary for the ledger and for people."""
        return {
            "verdict": self.verdict.value,
            "compared_with": self.compared_with,
            "checks": [
                {
                    "check": c.name,
                    "verdict": c.verdict.value,
                    "observed": c.observed,
                    "expected": c.expected,
                    "detail": c.detail,
                }
                for c in self.checks
            ],
        }


def _check(name: str, m: Measurement, limit: float, *, unit: str = "") -> CheckResult:
    """A measurement against an upper limit."""
    expected = f"<= {limit:g}{unit}"
    if m.error is not None:
        return CheckResult(name, Verdict.ERROR, expected=expected, detail=f"query failed: {m.error}")
    if m.value is None:
        return CheckResult(name, Verdict.INCONCLUSIVE, expected=expected, detail="no data")
    verdict = Verdict.PASS if m.value <= limit else Verdict.FAIL
    return CheckResult(name, verdict, observed=round(m.value, 6), expected=expected)


def _rate(name: str, rate: Measurement, trials: Measurement, limit: float, t: Thresholds) -> CheckResult:
    """A rate (errors, disagreement) against an upper limit, with confidence: FAIL only when the
    anytime-valid lower bound is over the limit; over it but not yet sure: INCONCLUSIVE (wait)."""
    check = _check(name, rate, limit)
    if check.verdict is not Verdict.FAIL or rate.value is None or not trials.value:
        return check
    n = int(trials.value)
    judged = stats.against_limit(round(rate.value * n), n, limit, t.confidence)
    return _blame_or_wait(
        check, judged.verdict == "over", judged.bounds.describe(), f"not yet sure it is over {limit:g}"
    )


def _blame_or_wait(check: CheckResult, confident: bool, detail: str, doubt: str) -> CheckResult:
    """A FAIL on the point estimate stands only when the evidence is sufficient; otherwise the
    step waits (INCONCLUSIVE) and says what it is not yet sure of."""
    if confident:
        return replace(check, detail=detail)
    return replace(check, verdict=Verdict.INCONCLUSIVE, detail=f"{detail}: {doubt}; waiting for more")


def _stable_breaks_too(check: CheckResult, stable: Measurement, limit: float, t: Thresholds) -> CheckResult:
    """An absolute SLO the candidate breaks while stable breaks it too (a loaded machine, a slow
    dependency): by default the step holds rather than blaming the candidate."""
    if check.verdict is not Verdict.FAIL or t.slo.when_stable_breaks != "hold":
        return check
    if stable.value is None or stable.value <= limit:
        return check
    return replace(
        check,
        verdict=Verdict.INCONCLUSIVE,
        detail=f"stable is breaking the SLO too ({stable.value:.4g} in the same window): holding",
    )


def _enough(name: str, m: Measurement, minimum: int, t: Thresholds | None = None) -> CheckResult | None:
    """INCONCLUSIVE/ERROR when there are too few samples to judge; None when there are enough.
    The wait says how long it will be at the rate seen, or that the window can never hold enough."""
    expected = f">= {minimum}"
    if m.error is not None:
        return CheckResult(name, Verdict.ERROR, expected=expected, detail=f"query failed: {m.error}")
    if m.value is None or m.value < minimum:
        got = 0 if m.value is None else int(m.value)
        detail = "waiting for more samples"
        if t is not None and t.window > 0:
            detail += "; " + waiting_for(got, minimum, t.window, max(t.full_window, t.window))
        return CheckResult(name, Verdict.INCONCLUSIVE, observed=got, expected=expected, detail=detail)
    return None


def waiting_for(got: int, minimum: int, window: float, full_window: float) -> str:
    """How long `minimum` samples take at the rate `got` in `window` seconds shows -- or that a
    window of `full_window` seconds cannot hold them at that rate, and what would."""
    if got <= 0:
        return f"none in the last {window:.0f}s: waiting for traffic"
    rate = got / window
    holds = rate * full_window
    if holds < minimum:
        return (
            f"at {rate:.2g}/s a {full_window:.0f}s window holds ~{holds:.0f}: it cannot reach {minimum} "
            f"-- needs a window of {minimum / rate:.0f}s (rollout.analysis_window), more traffic or "
            "a lower min_samples"
        )
    # It can hold them: the window is still growing (the release is younger than it).
    return f"~{max(minimum / rate - window, 0.0):.0f}s to go at {rate:.2g}/s"


def _ratio(
    name: str, cand: Measurement, stable: Measurement, limit: float, floor: float = 0.0
) -> CheckResult:
    expected = f"<= {limit:g}x stable"
    for m in (cand, stable):
        if m.error is not None:
            return CheckResult(name, Verdict.ERROR, expected=expected, detail=f"query failed: {m.error}")
    if cand.value is None or stable.value is None:
        return CheckResult(
            name, Verdict.INCONCLUSIVE, expected=expected, detail="no data for one of the versions"
        )
    if cand.value <= floor:
        return CheckResult(
            name, Verdict.PASS, observed=f"{cand.value:.4g} (below {floor:g})", expected=expected
        )
    base = max(stable.value, floor, 1e-12)
    ratio = cand.value / base
    verdict = Verdict.PASS if ratio <= limit else Verdict.FAIL
    return CheckResult(
        name,
        verdict,
        observed=round(ratio, 3),
        expected=expected,
        detail=f"candidate {cand.value:.4g} vs stable {stable.value:.4g}",
    )


def analyse_canary(
    candidate: VersionStats,
    stable: VersionStats,
    t: Thresholds,
    slower: tuple[float, Measurement] | None = None,
    over_slo: tuple[float, Measurement] | None = None,
) -> AnalysisResult:
    """Judge a canary step: absolute SLOs and comparison with stable over the same window.

    Args:
        slower: (bound in seconds, the candidate's requests answered within it), the bound being
            `max_p95_ratio_vs_stable` x stable's p95 rounded up to a histogram bucket; it turns a
            p95 ratio over its limit from a point estimate into a test (`_p95_ratio`).
        over_slo: the same count for the absolute p95 SLO (`slo.p95_latency_ms` rounded up to a
            bucket), for the same reason: a p95 of 30 requests over the SLO is not yet evidence.
    """
    result = AnalysisResult()
    waiting = _enough("candidate requests in window", candidate.requests, t.min_samples, t)
    if waiting is not None:
        result.checks.append(waiting)
        return result
    slo = t.slo
    errors = _rate("candidate error rate", candidate.error_rate, candidate.requests, slo.max_error_rate, t)
    latency = _check("candidate p95 latency", candidate.p95_ms, slo.p95_latency_ms, unit=" ms")
    latency = _slow_share(latency, candidate, over_slo, t, "")
    result.checks += [
        _stable_breaks_too(errors, stable.error_rate, slo.max_error_rate, t),
        _stable_breaks_too(latency, stable.p95_ms, slo.p95_latency_ms, t),
        _p95_ratio(candidate, stable, t, slower),
        _error_ratio(candidate, stable, t),
    ]
    result.checks += [user_check(name, m, candidate, stable) for name, m in t.metrics.items()]
    return result


def user_check(
    name: str, metric: MetricSection, candidate: VersionStats, stable: VersionStats
) -> CheckResult:
    """One of the user's metrics: the candidate's value (absolute) or its ratio to stable's over
    the same window (relative), within [min, max]."""
    label = f"metric {name}" + (" vs stable" if metric.compare == "relative" else "")
    bounds = [
        f">= {metric.min:g}" if metric.min is not None else "",
        f"<= {metric.max:g}" if metric.max is not None else "",
    ]
    expected = " and ".join(b for b in bounds if b) + ("x stable" if metric.compare == "relative" else "")
    mine = candidate.custom.get(name)
    theirs = stable.custom.get(name) if metric.compare == "relative" else None
    for m in (mine, theirs):
        if m is not None and m.error is not None:
            return CheckResult(label, Verdict.ERROR, expected=expected, detail=f"query failed: {m.error}")
    if mine is None or mine.value is None:
        return CheckResult(label, Verdict.INCONCLUSIVE, expected=expected, detail="no data for the candidate")
    value, detail = mine.value, ""
    if metric.compare == "relative":
        if theirs is None or theirs.value is None or theirs.value == 0:
            return CheckResult(
                label,
                Verdict.INCONCLUSIVE,
                expected=expected,
                detail="no (or zero) value for stable to compare with",
            )
        value, detail = mine.value / theirs.value, f"candidate {mine.value:.4g} vs stable {theirs.value:.4g}"
    ok = (metric.min is None or value >= metric.min) and (metric.max is None or value <= metric.max)
    return CheckResult(
        label,
        Verdict.PASS if ok else Verdict.FAIL,
        observed=round(value, 6),
        expected=expected,
        detail=detail,
    )


def _p95_ratio(
    candidate: VersionStats, stable: VersionStats, t: Thresholds, slower: tuple[float, Measurement] | None
) -> CheckResult:
    """The candidate's p95 against `max_p95_ratio_vs_stable` x stable's, blamed with confidence."""
    limit = t.slo.max_p95_ratio_vs_stable
    check = _ratio("p95 latency vs stable", candidate.p95_ms, stable.p95_ms, limit)
    return _slow_share(check, candidate, slower, t, f"{check.detail}; ")


def _slow_share(
    check: CheckResult,
    candidate: VersionStats,
    counted: tuple[float, Measurement] | None,
    t: Thresholds,
    prefix: str,
) -> CheckResult:
    """A p95 over a bound blames the candidate only with confidence.

    A p95 of a few dozen requests is noisy. If the candidate's p95 really is over a bound, more
    than 5% of its requests are slower than it; so the candidate is blamed only when the
    anytime-valid lower bound of that share is over 5%, and otherwise the step waits. Without the
    count (a cluster's own histograms), the point estimate decides as before.
    """
    if check.verdict is not Verdict.FAIL or counted is None or not candidate.requests.value:
        return check
    bound, within = counted
    if within.error is not None or within.value is None:
        return check
    n = int(candidate.requests.value)
    over = max(0, n - round(within.value))
    judged = stats.against_limit(over, n, 0.05, t.confidence)
    detail = f"{prefix}slower than {bound * 1000:g} ms: {judged.bounds.describe()}"
    doubt = f"not yet sure more than 5% are (the p95 of {n} requests)"
    return _blame_or_wait(check, judged.verdict == "over", detail, doubt)


def _error_ratio(candidate: VersionStats, stable: VersionStats, t: Thresholds) -> CheckResult:
    """The candidate's error rate against stable's, blamed only with confidence: the candidate's
    lower bound must clear `max_error_ratio_vs_stable` times stable's upper bound (or the floor)."""
    limit = t.slo.max_error_ratio_vs_stable
    check = _ratio(
        "error rate vs stable", candidate.error_rate, stable.error_rate, limit, floor=ERROR_RATE_FLOOR
    )
    counts = (
        candidate.error_rate.value,
        candidate.requests.value,
        stable.error_rate.value,
        stable.requests.value,
    )
    if check.verdict is not Verdict.FAIL or any(v is None for v in counts):
        return check
    c_rate, c_n, s_rate, s_n = (float(v or 0.0) for v in counts)
    mine = stats.rate_bounds(round(c_rate * c_n), int(c_n), t.confidence)
    theirs = stats.rate_bounds(round(s_rate * s_n), int(s_n), t.confidence)
    worst_allowed = limit * max(theirs.high, ERROR_RATE_FLOOR)
    detail = f"candidate {mine.describe()}; stable {theirs.describe()}"
    doubt = f"not yet sure it is over {limit:g}x stable"
    return _blame_or_wait(check, mine.low > worst_allowed, detail, doubt)


def analyse_shadow(candidate: VersionStats, shadow: ShadowStats, t: Thresholds) -> AnalysisResult:
    """Judge the shadow phase: the candidate's own errors, and how its answers compare with stable's."""
    result = AnalysisResult()
    # Samples are counted in mirrored requests, not in compared rows: a candidate that fails every
    # mirrored request has nothing to compare, and must fail on its error rate rather than wait.
    waiting = _enough("mirrored requests", candidate.requests, t.min_samples, t)
    if waiting is not None:
        result.checks.append(waiting)
        return result
    mirrored_errors = _rate(
        "candidate error rate (mirrored)", candidate.error_rate, candidate.requests, t.slo.max_error_rate, t
    )
    result.checks.append(mirrored_errors)
    too_few = _enough("answers compared with stable", shadow.compared, t.min_samples, t)
    if too_few is not None:
        result.checks.append(too_few)
        return result
    if t.task == "regression":
        # The gateway records each row's relative difference |c - s| / max(|c|, |s|) as its shift.
        checks = [_check("mean relative difference vs stable", shadow.score_shift, t.max_relative_difference)]
    else:
        checks = [
            _rate(
                "prediction disagreement with stable",
                shadow.disagreement,
                shadow.compared,
                t.max_disagreement,
                t,
            ),
            _check("mean score shift vs stable", shadow.score_shift, t.max_score_shift),
        ]
    if t.shadow_basis:
        checks = [replace(c, detail="; ".join(x for x in (c.detail, t.shadow_basis) if x)) for c in checks]
    result.checks += checks
    return result
