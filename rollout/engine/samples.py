"""What the controller measured at each analysis, kept for the ledger: the recorded evidence a
release's timelines are drawn from once it has ended (Prometheus forgets; the ledger does not).

One sample per analysis (the sliding-window values the analysis judged: candidate and stable
p95 and error rate, and in shadow the disagreement and score shift), held in memory and written
with the event that ends the step or the release, or as a `measurements` event every
`FLUSH_EVERY` samples -- a few events per step, not one per tick.
"""

from __future__ import annotations

from typing import Any

from launchbay.rollout.metrics.base import Measurement, ShadowStats, VersionStats

FLUSH_EVERY = 60
"""Samples held per release before they are written on their own."""


def _value(m: Measurement) -> float | None:
    return round(m.value, 6) if m.has_value and m.value is not None else None


def sample(
    at: float, role: str, candidate: VersionStats, stable: VersionStats | None, shadow: ShadowStats | None
) -> dict[str, Any]:
    """One analysis' measurements (missing values left out: no data is never a zero)."""
    values = {
        "c_p95": _value(candidate.p95_ms),
        "c_err": _value(candidate.error_rate),
        "c_n": _value(candidate.requests),
        "s_p95": _value(stable.p95_ms) if stable else None,
        "s_err": _value(stable.error_rate) if stable else None,
        "disagreement": _value(shadow.disagreement) if shadow else None,
        "score_shift": _value(shadow.score_shift) if shadow else None,
    }
    return {"t": round(at, 3), "role": role, **{k: v for k, v in values.items() if v is not None}}


class Samples:
    """Samples per release not yet written."""

    def __init__(self) -> None:
        self._held: dict[int, list[dict[str, Any]]] = {}

    def add(self, release_id: int, one: dict[str, Any]) -> list[dict[str, Any]] | None:
        """Hold a sample; the held ones (taken) when there are `FLUSH_EVERY` of them."""
        held = self._held.setdefault(release_id, [])
        held.append(one)
        return self.take(release_id) if len(held) >= FLUSH_EVERY else None

    def take(self, release_id: int) -> list[dict[str, Any]]:
        """The held samples of a release, no longer held."""
        return self._held.pop(release_id, [])

    def held(self) -> set[int]:
        """Releases with samples held."""
        return {rid for rid, held in self._held.items() if held}
