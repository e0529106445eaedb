"""Replay before shadow: live requests sent to a candidate alone, at the recorded peak and in a burst.

Open loop, as users arrive: each request leaves at its scheduled time whether or not earlier ones
were answered, so a candidate that cannot keep up builds a queue and its latency shows it (a
closed loop would slow down with it and hide exactly that). A request not answered within
`timeout` is the candidate's error, as is a 5xx; a 4xx is a request the candidate could not take
as replayed (a dropped field) and is counted apart, never against it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from launchbay.checks.verdict import Verdict
from launchbay.config.rollout import ReplaySection, SloSection

MIN_ANSWERS = 20
"""Fewer answered requests than this decide nothing (INCONCLUSIVE, said why)."""


@dataclass
class Leg:
    """One rate of the replay and what came back."""

    name: str
    rate: float
    seconds: float
    sent: int = 0
    answered: int = 0
    errors: int = 0
    rejected: int = 0
    latencies: list[float] = field(default_factory=list, repr=False)

    def p95_ms(self) -> float | None:
        """95th-percentile answer time in ms (None: no answer)."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]

    def error_rate(self) -> float | None:
        """Errors per judged request (5xx and timeouts over everything but 4xx)."""
        judged = self.sent - self.rejected
        return self.errors / judged if judged else None

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the ledger's evidence)."""
        doc = {k: v for k, v in asdict(self).items() if k != "latencies"}
        return {**doc, "p95_ms": self.p95_ms(), "error_rate": self.error_rate()}


@dataclass
class ReplayResult:
    """The verdict of a replay and its legs."""

    verdict: Verdict
    reason: str
    legs: list[Leg]
    peak_rps: float

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the ledger's evidence)."""
        return {
            "verdict": self.verdict.value,
            "reason": self.reason,
            "peak_rps": self.peak_rps,
            "legs": [leg.to_dict() for leg in self.legs],
        }


def plan(section: ReplaySection, peak_rps: float) -> list[Leg]:
    """The legs: a third of the time at the recorded peak, then the burst."""
    peak = max(float(peak_rps), section.min_rate)
    return [
        Leg("peak", peak, section.duration / 3),
        Leg("burst", peak * section.burst, section.duration * 2 / 3),
    ]


def judge(legs: list[Leg], slo: SloSection, peak_rps: float) -> ReplayResult:
    """FAIL naming the first leg that broke an SLO; PASS when the burst kept them; INCONCLUSIVE
    when the burst had too few judged requests to say (a leg that short is not judged)."""
    for leg in legs:
        if leg.answered + leg.errors < MIN_ANSWERS:
            continue
        rate, p95 = leg.error_rate() or 0.0, leg.p95_ms()
        if rate > slo.max_error_rate:
            why = (f"{leg.name} leg at {leg.rate:.0f} req/s: error rate {rate:.1%} (timeouts and 5xx) over "
                   f"{slo.max_error_rate:.1%}")  # fmt: skip
            return ReplayResult(Verdict.FAIL, why, legs, peak_rps)
        if p95 is not None and p95 > slo.p95_latency_ms:
            why = f"{leg.name} leg at {leg.rate:.0f} req/s: p95 {p95:.0f} ms over {slo.p95_latency_ms:g} ms"
            return ReplayResult(Verdict.FAIL, why, legs, peak_rps)
    burst = legs[-1]
    if burst.answered + burst.errors < MIN_ANSWERS:
        why = (
            f"{burst.name} leg: {burst.answered + burst.errors} judged requests, fewer than {MIN_ANSWERS} "
            f"({burst.rejected} of {burst.sent} were rejected as replayed: dropped or hashed fields?)"
        )
        return ReplayResult(Verdict.INCONCLUSIVE, why, legs, peak_rps)
    return ReplayResult(
        Verdict.PASS,
        f"took {burst.rate:.0f} req/s ({burst.rate / max(legs[0].rate, 1e-9):.1f}x the recorded peak) "
        f"with p95 {burst.p95_ms() or 0:.0f} ms and {burst.error_rate() or 0:.1%} errors",
        legs,
        peak_rps,
    )


def replay(url: str, bodies: list[str], legs: list[Leg], timeout: float) -> list[Leg]:
    """Send `bodies` (cycled) to `url`/predict leg by leg, open loop; fill in each leg."""
    return asyncio.run(_replay(url.rstrip("/") + "/predict", bodies, legs, timeout))


async def _replay(url: str, bodies: list[str], legs: list[Leg], timeout: float) -> list[Leg]:
    import aiohttp

    limit = aiohttp.TCPConnector(limit=512)
    headers = {"Content-Type": "application/json"}
    waits = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=limit, timeout=waits) as session:

        async def one(leg: Leg, body: str) -> None:
            started = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as r:
                    await r.read()
                    status = r.status
            except (TimeoutError, aiohttp.ClientError):
                status = 599  # no answer in time, or no connection: the candidate's failure
            if 400 <= status < 500:
                leg.rejected += 1
            elif status >= 500:
                leg.errors += 1
            else:
                leg.answered += 1
                leg.latencies.append(time.perf_counter() - started)

        n = 0
        for leg in legs:
            tasks = []
            start = time.perf_counter()
            count = max(1, int(leg.rate * leg.seconds))
            for i in range(count):
                delay = start + i / leg.rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(leg, bodies[n % len(bodies)])))
                leg.sent += 1
                n += 1
            await asyncio.gather(*tasks)
    return legs
