import itertools

import pytest

from launchbay.rollout.engine.phases import TRANSITIONS, IllegalTransition, Phase, transition


def test_the_happy_path_is_allowed() -> None:
    path = [
        Phase.PENDING,
        Phase.VERIFIED,
        Phase.SHADOW,
        Phase.CANARY,
        Phase.CANARY,
        Phase.AWAITING_APPROVAL,
        Phase.PROMOTED,
        Phase.ROLLED_BACK,
    ]
    for a, b in itertools.pairwise(path):
        assert transition(a, b) is b


@pytest.mark.parametrize("phase", [Phase.VERIFIED, Phase.SHADOW, Phase.CANARY, Phase.AWAITING_APPROVAL])
def test_every_live_phase_can_be_rolled_back_or_aborted(phase: Phase) -> None:
    assert phase.live
    assert {Phase.ROLLED_BACK, Phase.ABORTED} <= TRANSITIONS[phase]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (Phase.PENDING, Phase.PROMOTED),  # nothing is promoted unverified
        (Phase.FAILED, Phase.PROMOTED),
        (Phase.ROLLED_BACK, Phase.CANARY),  # final phases stay final
        (Phase.ABORTED, Phase.SHADOW),
        (Phase.FAILED, Phase.VERIFIED),
        (Phase.PENDING, Phase.CANARY),  # nothing gets traffic unverified
    ],
)
def test_illegal_moves_are_refused_with_the_allowed_ones_named(a: Phase, b: Phase) -> None:
    with pytest.raises(IllegalTransition, match=f"cannot go from {a.value} to {b.value}"):
        transition(a, b)


def test_only_verified_releases_reach_traffic() -> None:
    reaching_traffic = {a for a, targets in TRANSITIONS.items() if {Phase.SHADOW, Phase.CANARY} & targets}
    assert Phase.PENDING not in reaching_traffic
