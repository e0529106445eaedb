"""The MetricsProvider seam: one query, one Measurement -- a value, no data, or an error.

No data and an error are never turned into a number: a zero error rate measured over zero
requests is not evidence, and a metrics backend that is down is never a reason to promote.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Measurement:
    """The result of one metric query."""

    value: float | None = None
    error: str | None = None
    query: str = ""

    @property
    def has_value(self) -> bool:
        """True when the query answered with a number."""
        return self.value is not None and self.error is None

    @property
    def no_data(self) -> bool:
        """True when the query worked but there was nothing to measure."""
        return self.value is None and self.error is None

    @classmethod
    def failed(cls, query: str, error: str) -> Measurement:
        """A query that could not be answered."""
        return cls(None, error, query)


@dataclass(frozen=True)
class Series:
    """A query evaluated over a time range: (unix time, value) points, or why there are none.
    Steps with no data (NaN, nothing there) are left out, never turned into zeros."""

    points: tuple[tuple[float, float], ...] = ()
    error: str | None = None
    query: str = ""


class MetricsProvider(Protocol):
    """Answers one query with one Measurement."""

    def query(self, query: str) -> Measurement:
        """Evaluate `query` now; never raise for a backend problem (return an error Measurement)."""
        ...


@dataclass(frozen=True)
class VersionStats:
    """What was measured for one version over the analysis window."""

    requests: Measurement
    error_rate: Measurement
    p95_ms: Measurement
    custom: dict[str, Measurement] = field(default_factory=dict)
    """The user's own metrics (`rollout.metrics`), by name."""


@dataclass(frozen=True)
class ShadowStats:
    """Comparison of mirrored answers with stable's answers to the same requests."""

    compared: Measurement
    disagreement: Measurement
    """Share of compared requests where the predicted class differs."""
    score_shift: Measurement
    """Mean absolute difference of the scores."""
