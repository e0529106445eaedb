"""Rollout steps as data: what a release goes through, built from `rollout:` in launchbay.yaml.

A rollout is a `Plan` of typed steps and a release's state is an index into it. The kinds are a
pydantic discriminated union, so one step is exactly one kind by type, not by convention; what a
step means (its phase, the traffic it asks for, how people read it) lives on the step. The plan
travels typed from config to ledger to controller; the ledger stores it as a JSON list.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from launchbay.checks.difference import OfflineDifference
from launchbay.config.rollout import RolloutSection, ShadowSection
from launchbay.rollout.engine import stats
from launchbay.rollout.engine.phases import Phase

WITHOUT_OFFLINE = {"max_disagreement": 0.05, "max_score_shift": 0.1, "max_relative_difference": 0.1}
"""Limits where `offline` is asked for but nothing was measured against this stable (a champion
that could not be compared, a stable that is not the champion the candidate was gated against)."""


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    phase: ClassVar[Phase]
    """The phase a release is in while this step is its current one."""

    def describe(self) -> str:
        """The step in words, for people."""
        raise NotImplementedError


class Shadow(_Step):
    """Mirror live traffic to the candidate for `seconds`; compare its answers with stable's.

    The limits are fixed when the release is created (from the offline difference or the config),
    so the ledger says what every shadow analysis was judged against."""

    kind: Literal["shadow"] = "shadow"
    seconds: float
    max_disagreement: float
    max_score_shift: float | None = None
    max_relative_difference: float | None = None
    basis: str = ""
    """Where the limits come from, for people (`offline: 15 of 500 ... + margin 0.03`)."""
    phase: ClassVar[Phase] = Phase.SHADOW

    def describe(self) -> str:
        """`shadow for 15s`."""
        return f"shadow for {self.seconds:g}s"


class SetWeight(_Step):
    """Send `percent` of real traffic to the candidate."""

    kind: Literal["set-weight"] = "set-weight"
    percent: int
    baseline: bool = False
    """A fresh server of stable gets the same share, and the analysis compares with it."""
    phase: ClassVar[Phase] = Phase.CANARY

    def describe(self) -> str:
        """`canary weight 25%` (`, baseline 25%`)."""
        return f"canary weight {self.percent}%" + (f", baseline {self.percent}%" if self.baseline else "")


class Analysis(_Step):
    """Measure the candidate against its SLOs and against stable over `seconds`; advance on a
    PASS after that. More than `failure_limit` FAILs, or `inconclusive_limit` INCONCLUSIVEs in a
    row, roll back."""

    kind: Literal["analysis"] = "analysis"
    seconds: float
    failure_limit: int = 0
    inconclusive_limit: int | None = None
    window: float | None = None
    """The sliding window measured (None: the rollout's analysis_window)."""
    metrics: tuple[str, ...] | None = None
    """The user's metrics judged in this step (None: all of them)."""
    phase: ClassVar[Phase] = Phase.CANARY

    def describe(self) -> str:
        """`analysis for 10s` (`over 30s windows`, `metrics: a, b` when they are its own)."""
        own = f" over {self.window:g}s windows" if self.window else ""
        if self.metrics is not None:
            own += f", metrics: {', '.join(self.metrics) or 'none'}"
        return f"analysis for {self.seconds:g}s{own}"


class Pause(_Step):
    """Hold the weight for `seconds` (still watched: a FAIL rolls back), then go on."""

    kind: Literal["pause"] = "pause"
    seconds: float
    phase: ClassVar[Phase] = Phase.CANARY

    def describe(self) -> str:
        """`pause for 30s`."""
        return f"pause for {self.seconds:g}s"


class Approval(_Step):
    """Wait for a release manager in `approvers` (never the release's author)."""

    kind: Literal["approval"] = "approval"
    approvers: tuple[str, ...]
    phase: ClassVar[Phase] = Phase.AWAITING_APPROVAL

    def describe(self) -> str:
        """`approval by alice, bob`."""
        return "approval by " + ", ".join(self.approvers)


Step = Annotated[Shadow | SetWeight | Analysis | Pause | Approval, Field(discriminator="kind")]


@dataclass(frozen=True)
class Split:
    """What a step asks of the routes: the candidate's share of real traffic, and mirroring."""

    canary_weight: int = 0
    mirror: bool = False
    baseline: bool = False
    """A baseline server of stable takes the same share as the candidate."""


class Plan(BaseModel):
    """The ordered steps of a rollout (empty for a model's first version: nothing to compare)."""

    model_config = ConfigDict(frozen=True)

    steps: tuple[Step, ...] = ()

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, index: int) -> Shadow | SetWeight | Analysis | Pause | Approval:
        return self.steps[index]

    def traffic(self, index: int) -> Split:
        """The routes step `index` asks for: mirroring in shadow, else the last weight set so far."""
        if isinstance(self.steps[index], Shadow):
            return Split(mirror=True)
        weight, baseline = 0, False
        for step in self.steps[: index + 1]:
            if isinstance(step, SetWeight):
                weight, baseline = step.percent, step.baseline
        return Split(canary_weight=weight, baseline=baseline and weight > 0)

    @property
    def approvers(self) -> tuple[str, ...]:
        """Who may approve (empty when the plan has no approval step)."""
        return next((s.approvers for s in self.steps if isinstance(s, Approval)), ())

    def to_json(self) -> str:
        """The ledger's form: a JSON list of steps, each with its `kind`."""
        return json.dumps([s.model_dump() for s in self.steps])

    @classmethod
    def from_json(cls, text: str) -> Plan:
        """Parse the ledger's form."""
        return cls.model_validate({"steps": json.loads(text)})


def plan(
    rollout: RolloutSection, offline: OfflineDifference | None = None, stable: str | None = None
) -> Plan:
    """Translate the user's `rollout:` section into steps.

    `offline` is how the candidate's answers differed from `stable`'s at the model gate (when it
    was gated against that very version): the shadow step's limits follow from it.

    shadow (if configured) -> for each canary weight: set-weight, analysis -> approval (if required).
    Each analysis lasts the configured analysis window (at least one interval).
    """
    steps: list[Shadow | SetWeight | Analysis | Pause | Approval] = []
    if rollout.shadow is not None:
        steps.append(shadow_step(rollout.shadow, offline, stable))
    window = max(rollout.analysis_window, rollout.interval)
    approvers = tuple(rollout.approval.approvers)
    for item in rollout.steps:
        if isinstance(item, int):  # the short form: a weight, then an analysis of one window
            steps += [SetWeight(percent=item, baseline=rollout.baseline), Analysis(seconds=window)]
        elif item.set_weight is not None:
            steps.append(SetWeight(percent=item.set_weight, baseline=rollout.baseline))
        elif item.pause is not None:
            steps.append(Pause(seconds=max(item.pause, rollout.interval)))
        elif item.analysis is not None:
            a = item.analysis
            steps.append(
                Analysis(
                    seconds=max(a.duration, rollout.interval),
                    failure_limit=a.failure_limit,
                    inconclusive_limit=a.inconclusive_limit,
                    window=max(a.window, rollout.interval) if a.window else None,
                    metrics=tuple(a.metrics) if a.metrics is not None else None,
                )
            )
        elif item.approval:
            steps.append(Approval(approvers=approvers))
    if rollout.approval.required and not any(isinstance(s, Approval) for s in steps):
        steps.append(Approval(approvers=approvers))
    return Plan(steps=tuple(steps))


def shadow_step(shadow: ShadowSection, offline: OfflineDifference | None, stable: str | None) -> Shadow:
    """The shadow step with its limits: fixed numbers as configured, `offline` ones from what the
    model gate measured against this stable plus `margin` (the fallback where it measured none)."""
    measured = offline if offline is not None and stable is not None and offline.against == stable else None
    limits: dict[str, float] = {}
    said: list[str] = []
    for key in ("max_disagreement", "max_score_shift", "max_relative_difference"):
        configured = getattr(shadow, key)
        if configured != "offline":
            limits[key] = float(configured)
            continue
        offline_value: float | None = None
        if measured is not None and key == "max_disagreement" and measured.disagreeing is not None:
            # The offline rate is an estimate on a finite held-out set: its upper bound is the
            # difference the candidate is allowed without question.
            offline_value = stats.rate_bounds(measured.disagreeing, measured.rows).high
        elif measured is not None and key == "max_score_shift":
            offline_value = measured.score_shift
        elif measured is not None and key == "max_relative_difference":
            offline_value = measured.relative_difference
        if offline_value is None:
            limits[key] = WITHOUT_OFFLINE[key]
        else:
            limits[key] = round(min(offline_value + shadow.margin, 1.0), 4)
    if measured is not None:
        said.append(
            f"offline vs v{measured.against}: {measured.describe()}; live may be {shadow.margin:g} above"
        )
    elif any(getattr(shadow, k) == "offline" for k in WITHOUT_OFFLINE):
        why = (
            f"the candidate was gated against v{offline.against}, not v{stable}"
            if offline is not None
            else "no offline comparison was recorded for the candidate"
        )
        said.append(f"{why}: default limits")
    return Shadow(
        seconds=shadow.duration,
        max_disagreement=limits["max_disagreement"],
        max_score_shift=limits["max_score_shift"],
        max_relative_difference=limits["max_relative_difference"],
        basis="; ".join(said),
    )
