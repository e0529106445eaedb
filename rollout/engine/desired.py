"""The routes a release's state in the ledger calls for: one function, used by every actor.

The controller applies them at each step, people's operations when they end or promote a release,
and the local gateway when it (re)starts -- so traffic is always re-derived from the ledger, the
one source of truth, and a copy kept elsewhere (a gateway's routes file) can only agree with it.
"""

from __future__ import annotations

from collections.abc import Callable

from launchbay.rollout.engine.phases import Phase
from launchbay.rollout.engine.release import Release
from launchbay.rollout.targets.base import Backend, Routes

_BETWEEN = {Phase.SHADOW, Phase.CANARY, Phase.AWAITING_APPROVAL}
"""Phases in which traffic is split between (or mirrored from) stable and the candidate."""


def wanted(release: Release | None, backend: Callable[[str], Backend]) -> Routes:
    """Where traffic goes while the model's newest release is in its current phase and step.

    * no release: nothing to route to;
    * pending or verified (the candidate is being checked or started): stable alone;
    * shadow, canary, awaiting approval: stable and candidate, as the current step asks;
    * promoted: the released version alone;
    * rolled back, aborted, failed: stable alone again (nothing, for a first version).
    """
    if release is None:
        return Routes()
    if release.phase is Phase.PROMOTED:
        return Routes(stable=backend(release.version))
    stable = backend(release.stable_version) if release.stable_version is not None else None
    if release.phase in _BETWEEN and stable is not None:
        asked = release.plan.traffic(release.step_index)
        return Routes(
            stable=stable,
            canary=backend(release.version),
            canary_weight=asked.canary_weight,
            mirror=asked.mirror,
        )
    return Routes(stable=stable)
