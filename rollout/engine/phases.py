"""The phases of a release and the one table of transitions between them.

Every phase change in launchbay goes through `transition`, so an illegal move (promoting a release
that was rolled back, approving one still in shadow) is impossible by construction rather than
guarded by scattered checks.
"""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    """Where a release is on its way to users."""

    PENDING = "pending"
    """Created; nothing deployed yet."""
    VERIFIED = "verified"
    """Its signature verified against the trusted keys; its serving units are being started."""
    SHADOW = "shadow"
    """Serving units up; receives a copy of live traffic whose answers are compared, never returned."""
    CANARY = "canary"
    """Receives a share of real traffic (the step index says which weight)."""
    AWAITING_APPROVAL = "awaiting-approval"
    """Every analysis passed; waits for a release manager."""
    PROMOTED = "promoted"
    """Serves all traffic and holds the `champion` alias; the previous stable stays warm a while."""
    ROLLED_BACK = "rolled-back"
    """Taken out of traffic automatically (failed analysis, too many errors) or by on-call."""
    ABORTED = "aborted"
    """Stopped by a person (rejected, aborted) before promotion."""
    FAILED = "failed"
    """Could not be deployed at all (signature refused, crashed at start-up); never got traffic."""

    @property
    def live(self) -> bool:
        """True while the release may receive (mirrored or real) traffic or wait for a decision."""
        return self in _LIVE

    @property
    def final(self) -> bool:
        """True when no transition leaves this phase except rolling a promotion back."""
        return not TRANSITIONS[self] or self is Phase.PROMOTED


_LIVE = {Phase.VERIFIED, Phase.SHADOW, Phase.CANARY, Phase.AWAITING_APPROVAL}

TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.PENDING: frozenset({Phase.VERIFIED, Phase.FAILED, Phase.ABORTED}),
    # From verified a release enters its first step; with no step at all (the very first version
    # of a model: nothing to compare with) it is promoted directly.
    Phase.VERIFIED: frozenset(
        {
            Phase.SHADOW,
            Phase.CANARY,
            Phase.AWAITING_APPROVAL,
            Phase.PROMOTED,
            Phase.FAILED,
            Phase.ROLLED_BACK,
            Phase.ABORTED,
        }
    ),
    # Without an approval step, passing the last analysis promotes.
    Phase.SHADOW: frozenset(
        {Phase.CANARY, Phase.AWAITING_APPROVAL, Phase.PROMOTED, Phase.ROLLED_BACK, Phase.ABORTED}
    ),
    Phase.CANARY: frozenset(
        {Phase.CANARY, Phase.AWAITING_APPROVAL, Phase.PROMOTED, Phase.ROLLED_BACK, Phase.ABORTED}
    ),
    Phase.AWAITING_APPROVAL: frozenset({Phase.PROMOTED, Phase.ROLLED_BACK, Phase.ABORTED}),
    # After promotion, on-call can still roll back to the previous stable (kept warm).
    Phase.PROMOTED: frozenset({Phase.ROLLED_BACK}),
    Phase.ROLLED_BACK: frozenset(),
    Phase.ABORTED: frozenset(),
    Phase.FAILED: frozenset(),
}


class IllegalTransition(Exception):
    """A phase change the transition table does not allow."""

    def __init__(self, current: Phase, target: Phase) -> None:
        allowed = ", ".join(sorted(p.value for p in TRANSITIONS[current])) or "none: it is final"
        super().__init__(f"cannot go from {current.value} to {target.value} (allowed: {allowed})")
        self.current, self.target = current, target


def transition(current: Phase, target: Phase) -> Phase:
    """Return `target` if the table allows the move from `current`, else raise IllegalTransition."""
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(current, target)
    return target
