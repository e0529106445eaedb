"""`monitor:` -- watching the champion in production: capture, drift, live performance, retrain."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from launchbay.config.base import Duration, Section


class CaptureSection(Section):
    """What each model server keeps of the requests it answers, for the monitor to pull."""

    fields: list[str] | Literal["all"] = "all"
    """The request fields kept with each captured row (opt-in): `all`, or a list; any other field is
    dropped before the row leaves the server. Drift is judged on the kept features only."""
    hash: list[str] = Field(default_factory=list)
    """Kept fields stored only as a hash of their value (judged as categories; not retrainable)."""
    size: Annotated[int, Field(ge=100, le=1_000_000)] = 20_000
    """Answers each server holds between two pulls of the monitor (a ring: older ones are lost,
    and the monitor says how many)."""


class FeedbackSection(Section):
    """How labels come back: `POST /feedback` at the gateway or `launchbay feedback FILE`."""

    id_column: str = "request_id"
    """The column (or JSON field) holding the request id the gateway answered with (`X-Request-Id`)."""
    label_column: str | None = None
    """The column holding the label; default: `data.target`."""


class RetrainSection(Section):
    """What starts a retrain, and on what: the captured window with its fed-back labels."""

    on: list[Literal["drift", "performance"]] = Field(default_factory=lambda: ["drift", "performance"])  # type: ignore[arg-type]
    """The alarms that start a retrain ([]: alarms only)."""
    min_labelled: Annotated[int, Field(ge=1)] = 200
    """Labelled captured rows needed; fewer and the monitor says so and waits for more."""
    include_training_data: bool = False
    """Train on the original `data.path` plus the labelled window; default: the window alone (after
    a drift, live traffic is what the model must fit; it then needs `data.min_rows` labelled rows).
    Either way the data gate judges drift against the window's rows."""
    cooldown: Duration = 86400.0
    """The least time between two retrains the monitor starts."""


class MonitorSection(Section):
    """Watching the champion: its live inputs and answers against what it was trained on and
    answered offline, and its live loss where labels come back; alarms at a stated rate."""

    every: Duration = 60.0
    """How often the monitor pulls the captured rows and scores them (one batch)."""
    false_alarm_every: Duration = 365 * 86400.0
    """The expected time to a false alarm, at least, for inputs and answers together (and as much
    again for live performance)."""
    bet_every: Duration = 600.0
    """How often a new bet starts (a change is caught from the first bet after it began)."""
    keep: Duration = 86400.0
    """How far back bets reach."""
    tolerance: Annotated[float, Field(ge=0, le=1)] = 0.1
    """How far a bin's live share, or the live loss rate, may move relative to the reference before
    it counts (on top of the reference's own sampling error)."""
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.999
    """Of the reference's sampling-error intervals."""
    window: Duration = 7 * 86400.0
    """How long captured rows are kept for a retrain."""
    store: str | None = None
    """In a cluster: where the controller's monitor finds label files (`<store>/labels/`, put there
    by `launchbay feedback FILE` or any export) and writes the windows the Argo workflow retrains on
    (`<store>/retrain/`); an fsspec URL such as s3://bucket/launchbay/MODEL (credentials from the
    environment). Not used on the local target."""
    capture: CaptureSection = CaptureSection()
    feedback: FeedbackSection = FeedbackSection()
    retrain: RetrainSection = RetrainSection()
