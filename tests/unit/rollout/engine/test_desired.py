"""The world a ledger calls for: a pure function, checked phase by phase and for every ledger."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from launchbay.rollout.engine.desired import desired
from launchbay.rollout.engine.phases import Phase
from launchbay.rollout.engine.plan import Analysis, Approval, Plan, SetWeight, Shadow
from launchbay.rollout.engine.release import Release

PLAN = Plan(
    steps=(
        Shadow(seconds=5, max_disagreement=0.02),
        SetWeight(percent=20),
        Analysis(seconds=5),
        SetWeight(percent=50),
        Approval(approvers=("alice",)),
    )
)


def release(
    phase: Phase, step: int = 0, version: str = "3", stable: str | None = "2", rid: int = 7, at: float = 100.0
) -> Release:
    return Release(rid, "m", version, "dana", stable, phase, step, at, 0, PLAN, at, at)


def test_each_phase_of_the_newest_release_calls_for_its_own_world() -> None:
    assert desired("m", 0, [], 0, 60).serving == frozenset()
    pending = desired("m", 1, [release(Phase.PENDING)], 100, 60)
    assert (pending.stable, pending.canary, pending.serving) == ("2", None, {"2"})
    verified = desired("m", 1, [release(Phase.VERIFIED)], 100, 60)
    assert (verified.canary, verified.serving, verified.candidate) == (None, {"2", "3"}, "3")
    shadow = desired("m", 1, [release(Phase.SHADOW, 0)], 100, 60)
    assert (shadow.canary, shadow.canary_weight, shadow.mirror) == ("3", 0, True)
    canary = desired("m", 1, [release(Phase.CANARY, 2)], 100, 60)
    assert (canary.canary, canary.canary_weight, canary.mirror) == ("3", 20, False)
    waiting = desired("m", 1, [release(Phase.AWAITING_APPROVAL, 4)], 100, 60)
    assert (waiting.canary_weight, waiting.champion) == (50, "2")
    for ended in (Phase.ROLLED_BACK, Phase.ABORTED, Phase.FAILED):
        d = desired("m", 1, [release(ended, 3)], 100, 60)
        assert (d.stable, d.canary, d.serving, d.champion) == ("2", None, {"2"}, "2")
        assert d.outcome == ("3", ended.value)


def test_after_a_promotion_the_previous_stable_is_warm_until_its_grace_period_ends() -> None:
    promoted = release(Phase.PROMOTED, 4, at=1000.0)
    during = desired("m", 1, [promoted], 1059.0, 60)
    assert (during.stable, during.serving, during.champion) == ("3", {"2", "3"}, "3")
    assert during.retire_at == {"2": 1060.0} and during.wake_at == 1060.0
    after = desired("m", 1, [promoted], 1060.0, 60)
    assert after.serving == {"3"} and after.retire_at == {"2": 1060.0}


def test_a_newer_release_needs_nothing_of_the_previous_promotion() -> None:
    # Released again within the grace period: version 2 (the stable before 3) is needed by nobody.
    older = release(Phase.PROMOTED, 4, version="3", stable="2", rid=7, at=1000.0)
    newer = release(Phase.PENDING, version="4", stable="3", rid=8, at=1010.0)
    d = desired("m", 2, [newer, older], 1011.0, 600)
    assert d.serving == {"3"} and d.retire_at == {}


def test_a_first_version_serves_nothing_until_it_is_promoted() -> None:
    first = release(Phase.VERIFIED, stable=None)
    d = desired("m", 1, [first], 100, 60)
    assert (d.stable, d.canary, d.serving, d.champion) == (None, None, {"3"}, None)
    failed = desired("m", 1, [release(Phase.FAILED, stable=None)], 100, 60)
    assert (failed.stable, failed.serving, failed.champion) == (None, frozenset(), None)


phases = st.sampled_from(list(Phase))


@settings(max_examples=300, deadline=None)
@given(
    newest=phases,
    step=st.integers(0, len(PLAN) - 1),
    stable=st.sampled_from([None, "1", "2"]),
    now=st.floats(0, 5000),
    grace=st.floats(0, 1000),
    older=st.lists(st.tuples(phases, st.sampled_from(["1", "2", "3", "4"])), max_size=3),
)
def test_for_every_ledger_whatever_receives_traffic_runs_and_traffic_never_lacks_a_stable(
    newest: Phase, step: int, stable: str | None, now: float, grace: float, older: list[tuple[Phase, str]]
) -> None:
    releases = [release(newest, step, version="5", stable=stable, rid=99, at=1000.0)]
    releases += [release(p, 0, version=v, stable="1", rid=10 - i) for i, (p, v) in enumerate(older)]
    d = desired("m", 3, releases, now, grace)
    routed = {v for v in (d.stable, d.canary) if v is not None}
    assert routed <= d.serving  # never route to a server that need not run
    assert d.canary is None or d.stable is not None  # a canary only ever beside a stable
    assert d.candidate is None or d.candidate in d.serving
    assert d.champion is None or d.champion == d.stable
    assert set(d.retire_at) <= {stable}  # only ever the newest promotion's previous stable waits
    if d.stable is not None and d.canary is None:
        assert not d.mirror and d.canary_weight == 0
