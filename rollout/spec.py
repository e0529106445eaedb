"""Rollout steps as data: what a release goes through, built from `rollout:` in launchbay.yaml.

A rollout is a list of steps and a release's state is an index into it. The kinds are a pydantic
discriminated union, so one step is exactly one kind by type, not by convention.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from launchbay.config import RolloutSection


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Shadow(_Step):
    """Mirror live traffic to the candidate for `seconds`; compare its answers with stable's."""

    kind: Literal["shadow"] = "shadow"
    seconds: float
    max_disagreement: float


class SetWeight(_Step):
    """Send `percent` of real traffic to the candidate."""

    kind: Literal["set-weight"] = "set-weight"
    percent: int


class Analysis(_Step):
    """Measure the candidate against its SLOs and against stable over `seconds`; FAIL rolls back."""

    kind: Literal["analysis"] = "analysis"
    seconds: float


class Approval(_Step):
    """Wait for a release manager in `approvers` (never the release's author)."""

    kind: Literal["approval"] = "approval"
    approvers: tuple[str, ...]


Step = Annotated[Shadow | SetWeight | Analysis | Approval, Field(discriminator="kind")]


class Plan(BaseModel):
    """The ordered steps of a rollout."""

    model_config = ConfigDict(frozen=True)

    steps: tuple[Step, ...]


def plan(rollout: RolloutSection) -> Plan:
    """Translate the user's `rollout:` section into steps.

    shadow (if configured) -> for each canary weight: set-weight, analysis -> approval (if required).
    Each analysis lasts the configured analysis window (at least one interval).
    """
    steps: list[Shadow | SetWeight | Analysis | Approval] = []
    if rollout.shadow is not None:
        steps.append(
            Shadow(seconds=rollout.shadow.duration, max_disagreement=rollout.shadow.max_disagreement)
        )
    window = max(rollout.analysis_window, rollout.interval)
    for percent in rollout.steps:
        steps += [SetWeight(percent=percent), Analysis(seconds=window)]
    if rollout.approval.required:
        steps.append(Approval(approvers=tuple(rollout.approval.approvers)))
    return Plan(steps=tuple(steps))
