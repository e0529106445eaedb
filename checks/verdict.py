"""The four-valued verdict every gate and analysis returns; combining verdicts takes the worst."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Verdict(StrEnum):
    """Outcome of a check, ordered from best to worst."""

    PASS = "PASS"
    """The evidence is there and it is good."""
    INCONCLUSIVE = "INCONCLUSIVE"
    """Not enough evidence to decide (no data yet, too few samples). Never a reason to promote."""
    ERROR = "ERROR"
    """The check itself could not run (a query failed, a model could not be loaded)."""
    FAIL = "FAIL"
    """The evidence is there and it is bad."""

    @property
    def rank(self) -> int:
        """Position in the order PASS < INCONCLUSIVE < ERROR < FAIL."""
        return _ORDER.index(self)

    @property
    def ok(self) -> bool:
        """True only for PASS: a gate lets a model through on PASS alone."""
        return self is Verdict.PASS


_ORDER = [Verdict.PASS, Verdict.INCONCLUSIVE, Verdict.ERROR, Verdict.FAIL]


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    """Combine verdicts: the worst one wins; no verdicts at all is INCONCLUSIVE."""
    result: Verdict | None = None
    for v in verdicts:
        if result is None or v.rank > result.rank:
            result = v
    return result if result is not None else Verdict.INCONCLUSIVE
