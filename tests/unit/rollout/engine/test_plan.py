from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from launchbay.config import load_config
from launchbay.errors import ConfigError
from launchbay.rollout.engine.plan import Analysis, Approval, Plan, SetWeight, Shadow, plan


def test_the_example_rollout_becomes_shadow_canary_steps_and_approval(project: Callable[..., Path]) -> None:
    cfg = load_config(project(rows=200))
    steps = plan(cfg.rollout).steps
    assert isinstance(steps[0], Shadow) and steps[0].seconds == 15.0
    assert [s.percent for s in steps if isinstance(s, SetWeight)] == [20, 50]
    assert all(isinstance(s, Analysis) for s in steps[2:5:2])
    assert isinstance(steps[-1], Approval) and "alice" in steps[-1].approvers


def test_a_plan_round_trips_as_data() -> None:
    p = Plan(
        steps=(Shadow(seconds=1, max_disagreement=0.1), SetWeight(percent=5), Approval(approvers=("a",)))
    )
    assert Plan.model_validate_json(p.model_dump_json()) == p


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"rollout.target": "nomad"}, "rollout.target"),
        ({"rollout.steps": [25, 5]}, "increase"),
        ({"rollout.interval": "soon"}, "expected a duration"),
        ({"rollout.target": "knative"}, "cannot mirror requests"),
        ({"rollout.approval": {"required": True, "approvers": {}}}, "name who may approve"),
        (
            {"rollout.approval": {"required": True, "approvers": ["alice", "bob"]}},
            r"rollout.approval.approvers: expected each approver with the public key .* got only names "
            r"\(alice, bob\); make a key pair with `launchbay keys approver NAME`",
        ),
    ],
)
def test_rollout_config_mistakes_are_named(
    project: Callable[..., Path], overrides: dict, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(project(rows=200, overrides=overrides))


def test_knative_without_shadow_and_durations_in_words(project: Callable[..., Path]) -> None:
    cfg = load_config(
        project(
            rows=200,
            overrides={
                "rollout.target": "knative",
                "rollout.shadow": None,
                "rollout.grace_period": "2m",
                "rollout.interval": "500ms",
            },
        )
    )
    assert cfg.rollout.grace_period == 120 and cfg.rollout.interval == 0.5
    assert not any(isinstance(s, Shadow) for s in plan(cfg.rollout).steps)


def test_shadow_limits_follow_what_the_model_gate_measured_against_that_very_stable() -> None:
    from launchbay.checks.difference import OfflineDifference
    from launchbay.config.rollout import ShadowSection
    from launchbay.rollout.engine import stats
    from launchbay.rollout.engine.plan import WITHOUT_OFFLINE, shadow_step

    offline = OfflineDifference("1", 500, disagreeing=15, score_shift=0.02)
    step = shadow_step(ShadowSection(duration=10), offline, "1")
    bound = stats.rate_bounds(15, 500).high
    assert step.max_disagreement == round(bound + 0.03, 4) and 0.03 < bound < 0.07
    assert step.max_score_shift == 0.05
    assert "offline vs v1: 15 of 500 distinct held-out rows disagree (3.0%)" in step.basis
    # Gated against another version than the one serving now: nothing measured applies.
    other = shadow_step(ShadowSection(duration=10), offline, "2")
    assert other.max_disagreement == WITHOUT_OFFLINE["max_disagreement"]
    assert "gated against v1, not v2" in other.basis
    assert "no offline comparison" in shadow_step(ShadowSection(duration=10), None, "1").basis
    # A number is a fixed limit, as before: the explicit choice.
    fixed = shadow_step(ShadowSection(duration=10, max_disagreement=0.02, max_score_shift=0.2), offline, "1")
    assert (fixed.max_disagreement, fixed.max_score_shift) == (0.02, 0.2)
    older = Shadow.model_validate({"kind": "shadow", "seconds": 5, "max_disagreement": 0.02})
    assert older.max_score_shift is None and older.basis == ""  # a release recorded before these
