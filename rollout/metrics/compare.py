"""How far apart two versions' answers to the same row are: one definition for the local gateway
(which sees both answers) and the cluster's join of the model servers' answer logs."""

from __future__ import annotations

from typing import Any, TypeGuard


def row_shift(stable: Any, candidate: Any) -> float | None:
    """How far apart two answers for the same row are, in [0, 1] (None: not comparable).

    A classifier's answer carries scores: the difference of the positive class's probability
    (binary), or half the L1 distance between the class distributions (multiclass, `scores`). A
    regressor's is a value: the relative difference |c - s| / max(|c|, |s|).
    """
    if not isinstance(stable, dict) or not isinstance(candidate, dict):
        return None
    ss, cs = stable.get("scores"), candidate.get("scores")
    if isinstance(ss, dict) and isinstance(cs, dict):
        keys = set(ss) | set(cs)
        if all(isinstance(d.get(k, 0.0), (int, float)) for d in (ss, cs) for k in keys):
            return 0.5 * sum(abs(float(ss.get(k, 0.0)) - float(cs.get(k, 0.0))) for k in keys)
        return None
    s, c = stable.get("score"), candidate.get("score")
    if _number(s) and _number(c):
        return abs(float(s) - float(c))
    s, c = stable.get("prediction"), candidate.get("prediction")
    if "score" not in stable and _number(s) and _number(c):
        scale = max(abs(float(s)), abs(float(c)))
        return min(abs(float(c) - float(s)) / scale, 1.0) if scale else 0.0
    return None


def disagree(stable: Any, candidate: Any) -> bool:
    """Whether a classifier's two answers predict different classes (a regressor's never count:
    its difference is `row_shift`'s)."""
    if not isinstance(stable, dict) or not isinstance(candidate, dict) or "score" not in stable:
        return False
    return bool(stable.get("prediction") != candidate.get("prediction"))


def _number(v: object) -> TypeGuard[int | float]:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
