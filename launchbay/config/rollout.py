"""How a registered version reaches users, and who is told: what `launchbay.rollout` reads."""

from __future__ import annotations

import itertools
import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from launchbay.config.base import Duration, Section

Offline = Literal["offline"]


class ShadowSection(Section):
    """Mirror live traffic to the candidate and compare its answers before it gets real traffic.

    A retrain differs from the model before it by design. By default (`offline`) each limit is
    what the model gate measured between the two on the same held-out rows, plus `margin`: live
    answers clearly further apart than that (training/serving skew, a broken feature) fail, the
    difference a better model brings does not. A number is a fixed limit instead."""

    duration: Duration = 30.0
    max_disagreement: Annotated[float, Field(ge=0, le=1)] | Offline = "offline"
    """Largest share of mirrored rows whose predicted class may differ from stable's (classification)."""
    max_score_shift: Annotated[float, Field(ge=0, le=1)] | Offline = "offline"
    """Largest mean difference between candidate and stable scores (binary: of the positive
    class's probability; multiclass: half the L1 distance between the class distributions)."""
    max_relative_difference: Annotated[float, Field(ge=0, le=2)] | Offline = "offline"
    """Regression: largest mean relative difference |c - s| / max(|c|, |s|) between the values."""
    margin: Annotated[float, Field(ge=0, le=1)] = 0.03
    """How far above the offline difference (for disagreement: its upper confidence bound) the
    live one may be before it counts as harm."""


class SloSection(Section):
    """Service-level objectives a canary must meet, absolute and relative to stable."""

    p95_latency_ms: Annotated[float, Field(gt=0)] = 50.0
    """The candidate's 95th-percentile latency may not exceed this, in milliseconds."""
    max_error_rate: Annotated[float, Field(ge=0, le=1)] = 0.01
    """The candidate's fraction of server errors (5xx, timeouts) may not exceed this; malformed
    requests (4xx) never count."""
    max_p95_ratio_vs_stable: Annotated[float, Field(ge=1)] = 1.3
    """The candidate's p95 may be at most this many times stable's over the same window."""
    max_error_ratio_vs_stable: Annotated[float, Field(ge=1)] = 2.0
    """The candidate's error rate may be at most this many times stable's over the same window."""
    when_stable_breaks: Literal["hold", "fail"] = "hold"
    """An absolute SLO that stable breaks too in the same window (a loaded machine): hold the step,
    or fail the candidate anyway."""


class ApprovalSection(Section):
    """Who may promote a release (never its author: four eyes), each proven by their own key."""

    required: bool = True
    """A release waits at its approval step for a release manager's signed approval; false: canary
    steps promote on their own."""
    approvers: dict[str, str] = Field(
        default_factory=dict,
        description="release managers, each with the public key (path or PEM) their approvals verify with",
    )
    workflows: dict[str, str] = Field(
        default_factory=dict,
        description="CI identities that approve for a reviewer their platform checked (GitHub "
        "environments), each with its public key",
    )

    @field_validator("approvers", "workflows", mode="before")
    @classmethod
    def _keyed(cls, v: object) -> object:
        if isinstance(v, list):
            names = ", ".join(map(str, v)) or "..."
            raise ValueError(
                "expected each approver with the public key their approvals are verified with, e.g. "
                f"{{alice: approvers/alice.pub}}, got only names ({names}); make a key pair with "
                "`launchbay keys approver NAME`"
            )
        return v

    @model_validator(mode="after")
    def _someone(self) -> ApprovalSection:
        if self.required and not self.approvers:
            raise ValueError("approval is required but `approvers` is empty: name who may approve")
        return self


class QueriesSection(Section):
    """PromQL templates of the analysis (like Flagger's metric templates); None: launchbay's default
    over its gateway's metrics. Placeholders: {version} {role} {window} (e.g. `10s`), and for the
    shadow comparison {stable} {candidate}. Each must aggregate to one number."""

    requests: str | None = None
    """Requests per second of {version} over {window}."""
    error_rate: str | None = None
    """Fraction of {version}'s requests answered with a server error over {window}."""
    p95_ms: str | None = None
    """95th-percentile latency of {version} in milliseconds over {window}."""
    compared: str | None = None
    """Shadow: rows answered by both {stable} and {candidate} (the disagreement's sample size)."""
    disagreement: str | None = None
    """Shadow: fraction of compared rows whose answers differ between {stable} and {candidate}."""
    score_shift: str | None = None
    """Shadow: mean absolute difference of the scores of {stable} and {candidate}."""


_HEADER = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"
"""An HTTP header name (RFC 9110 token)."""


class RoutingSection(Section):
    """Which version answers a request besides the weights: testers' pins and sticky users.

    A request carrying `pin_header` (`candidate`, `stable` or a version number) is answered by
    that version whatever the weights, never retried on another, never mirrored, and counted apart
    (role `pinned`): testers never move the analysis. On Knative the header is Knative's own,
    `Knative-Serving-Tag` (values `candidate`, `stable`, `vN`; the cluster enables
    `tag-header-based-routing`)."""

    pin_header: str | None = Field(default="X-Launchbay-Pin", pattern=_HEADER)
    """The request header a tester pins a version with (null: no pinning)."""
    sticky: Literal["cookie", "header"] | None = None
    """Keep each user on the version first given to them until the release ends: `cookie` (the
    gateway sets `sticky_cookie`; kubernetes: a cookie match in the HTTPRoute) or `header` (a hash
    of `sticky_header`, e.g. a user id; local target only). null: each request is drawn by weight."""
    sticky_header: str | None = Field(default=None, pattern=_HEADER)
    """With `sticky: header`, the request header naming the user (e.g. X-User-Id)."""
    sticky_cookie: str = Field(default="launchbay-version", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    """With `sticky: cookie`, the cookie's name."""

    @model_validator(mode="after")
    def _key_named(self) -> RoutingSection:
        if self.sticky == "header" and not self.sticky_header:
            raise ValueError(
                "sticky: header needs sticky_header, the request header naming the user (e.g. X-User-Id)"
            )
        return self


class ReplaySection(Section):
    """Replay before shadow: before the candidate gets any mirrored traffic, requests the gateway
    sampled from live traffic are sent to it alone, at the recorded peak rate and then in a burst
    at `burst` times it; its latency and errors are judged against the SLOs. A candidate that
    cannot take the burst fails before any user request reaches it."""

    capture: Annotated[int, Field(ge=10, le=100_000)] = 1000
    """Requests the local gateway keeps (a uniform sample of users' requests; never more)."""
    drop: list[str] = Field(default_factory=list)
    """Fields removed from every kept row (requests that then miss a feature are answered 4xx
    in the replay and counted as not replayable, never as the candidate's errors)."""
    hash: list[str] = Field(default_factory=list)
    """Fields kept only as a hash of their value."""
    burst: Annotated[float, Field(ge=1, le=100)] = 3.0
    """The burst's rate, as a multiple of the busiest second the gateway recorded."""
    min_rate: Annotated[float, Field(gt=0)] = 5.0
    """The peak assumed when traffic was quieter than this (requests/s)."""
    duration: Duration = 10.0
    """The whole replay: a third at the recorded peak, then the burst."""


class PreflightSection(Section):
    """What a candidate goes through after it started and before shadow."""

    replay: ReplaySection | None = None


class AnalysisStep(Section):
    """An analysis step: measured every interval over the analysis window for `duration`; it
    advances on a PASS after its duration."""

    duration: Duration
    failure_limit: Annotated[int, Field(ge=0)] = 0
    """FAILs tolerated in this step before the rollback (0: the first FAIL rolls back)."""
    inconclusive_limit: Annotated[int, Field(ge=1)] | None = None
    """INCONCLUSIVE analyses in a row tolerated before the rollback (None: wait as long as it takes)."""
    window: Duration | None = None
    """The sliding window this analysis measures over (default: rollout.analysis_window)."""
    metrics: list[str] | None = None
    """Which of rollout.metrics this analysis judges (default: all of them; [] for none)."""


class StepSpec(Section):
    """One explicit rollout step (like Argo Rollouts' canary steps): exactly one of the keys."""

    set_weight: Annotated[int, Field(gt=0, le=100)] | None = None
    """Percentage of traffic the candidate gets at this step."""
    pause: Duration | None = None
    """Hold the weight this long (still watched: a FAIL rolls back), then go on."""
    analysis: AnalysisStep | None = None
    approval: Literal[True] | None = None
    """true: the release waits here until a release manager approves (or rejects) it."""

    @model_validator(mode="after")
    def _one(self) -> StepSpec:
        given = [k for k in ("set_weight", "pause", "analysis", "approval") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "expected exactly one of set_weight, pause, analysis, approval in each step, "
                f"got {', '.join(given) or 'none'}"
            )
        return self


_PLACEHOLDER = re.compile(r"\{(version|window)\}")


class MetricSection(Section):
    """A metric of your own, judged at every canary analysis (like Flagger's MetricTemplate or
    Argo Rollouts' AnalysisTemplate): a PromQL query and its success condition."""

    query: str = Field(
        description="PromQL giving one number; {version} (the version measured) and {window} "
        "(e.g. 10s) are filled in, every other brace is PromQL's"
    )
    compare: Literal["absolute", "relative"] = Field(
        default="absolute",
        description="absolute: the candidate's value within [min, max]; relative: the candidate's "
        "value divided by stable's over the same window within [min, max]",
    )
    min: float | None = None
    """Lowest acceptable value (with compare: relative, of candidate / stable); None: no floor."""
    max: float | None = None
    """Highest acceptable value (with compare: relative, of candidate / stable); None: no ceiling."""

    @model_validator(mode="after")
    def _condition(self) -> MetricSection:
        if self.min is None and self.max is None:
            raise ValueError("a metric needs its success condition: `min`, `max` or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"`min` ({self.min}) is greater than `max` ({self.max})")
        if "{version}" not in self.query:
            raise ValueError("the query must select the version it measures with {version}")
        return self

    def filled(self, version: str, window: str) -> str:
        """The query for one version over one window."""
        values = {"version": version, "window": window}
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], self.query)


class RolloutSection(Section):
    """How a registered model reaches users: shadow, canary steps, approval, rollback."""

    target: Literal["local", "kubernetes", "knative", "function"] = "local"
    """Where versions run: local (this machine, behind launchbay's gateway), kubernetes (Deployments
    and Gateway API routes), knative (Knative Services / Cloud Run), function (AWS Lambda
    weighted aliases)."""
    shadow: ShadowSection | None = ShadowSection()
    steps: list[Annotated[int, Field(gt=0, lt=100)]] | list[StepSpec] = Field(
        default_factory=lambda: [5, 25, 50],
        description="canary weights (each followed by an analysis of analysis_window), or explicit "
        "steps: set_weight, pause, analysis {duration, failure_limit, inconclusive_limit, window, "
        "metrics}, approval",
    )
    interval: Duration = 2.0
    """How often the controller measures and decides."""
    analysis_window: Duration = 10.0
    """How long each canary step is measured before moving on."""
    min_samples: Annotated[int, Field(ge=1)] = 50
    """Fewer requests than this in a window: the step waits (no data is not a pass)."""
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.95
    """Error rates and disagreement blame the candidate only when an anytime-valid bound at this
    confidence clears the limit (a few unlucky rows wait for more instead)."""
    expected_rps: Annotated[float, Field(gt=0)] = 5.0
    """Requests per second the model usually gets: `launchbay init` sizes steps by it, `launchbay
    check` warns when a step cannot reach min_samples at it, and the progress deadline follows."""
    progress_deadline: Duration | None = None
    """How long a shadow or analysis step may go on without deciding. None: derived -- the step's
    duration plus three times what min_samples takes at expected_rps and the step's share of it,
    at least two minutes more."""
    on_deadline: Literal["hold", "abort", "rollback"] = "hold"
    """What a step past its progress deadline does: hold (the default: it goes on waiting, and
    the `stalled` notification says what it waits for), abort, or roll back."""
    max_consecutive_errors: Annotated[int, Field(ge=1)] = 3
    """Metric queries failing this many times in a row roll the release back."""
    grace_period: Duration = 300.0
    """How long the previous stable stays warm after a promotion (instant rollback)."""
    start_timeout: Duration = 120.0
    """A candidate not ready after this long is marked failed (it never gets traffic)."""
    hedge_factor: Annotated[float, Field(ge=1, le=100)] = 4.0
    """The gateway sends a second copy of a request to stable when the candidate has not answered
    within this many times stable's p95 (never sooner than hedge_floor): a slow candidate costs
    users little while it is judged."""
    hedge_floor: Duration = 0.5
    """Local gateway: a canary (or mirrored) request not answered within hedge_factor x stable's
    recent p99 (at least hedge_floor) is answered by stable and counts as the candidate's failure:
    a hung candidate costs each client one short wait."""
    slo: SloSection = SloSection()
    routing: RoutingSection = RoutingSection()
    preflight: PreflightSection = PreflightSection()
    baseline: bool = False
    """Start a fresh server of stable beside the candidate and send it the candidate's share of
    traffic: each canary analysis compares the candidate with that baseline -- same share, same
    time, same freshness -- rather than with the long-running stable (Kayenta's practice). Local
    target; weights up to 50%."""
    approval: ApprovalSection = ApprovalSection(required=False)
    gateway_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    """Local target: the gateway's port (default: chosen once, then kept)."""
    gateway_idle_timeout: Duration = 15.0
    """Local gateway: a connection idle this long -- no complete request yet, or none since the
    last answer -- is closed (idle or half-open connections cannot pile up)."""
    gateway_body_timeout: Duration = 10.0
    """Local gateway: a request whose body has not arrived this long after its headers gets a 408."""
    queries: QueriesSection = QueriesSection()
    metrics: dict[str, MetricSection] = Field(
        default_factory=dict,
        description="your own metrics, each judged in every canary analysis (business metrics "
        "included: e.g. the share of positive predictions relative to stable)",
    )
    ledger_url: str | None = None
    """SQLAlchemy URL of the ledger (e.g. postgresql://...); default: $LAUNCHBAY_LEDGER_URL, else
    SQLite in the state directory."""
    witness_dir: str | None = None
    """Where the ledger's heads are witnessed, signed, outside its database (default: `witness/` in
    the state directory); put it on a disk the database's administrators cannot write."""
    witness_keys: list[str] = Field(default_factory=list)
    """Public witness keys of other machines writing the same ledger and witness directory."""
    prometheus_url: str | None = None
    """An existing Prometheus; default for the local target: launchbay starts Debian's `prometheus`."""
    prometheus_ca_file: str | None = None
    """CA bundle that signed an https Prometheus's certificate (default: the system's; also
    $LAUNCHBAY_PROMETHEUS_CA_FILE). Credentials: $LAUNCHBAY_PROMETHEUS_TOKEN, or
    $LAUNCHBAY_PROMETHEUS_USER and $LAUNCHBAY_PROMETHEUS_PASSWORD."""
    prometheus_insecure: bool = False
    """Skip TLS verification (never the default: a forged Prometheus could promote a bad model)."""

    @field_validator("metrics")
    @classmethod
    def _metric_names(cls, v: dict[str, MetricSection]) -> dict[str, MetricSection]:
        for name in v:
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", name):
                raise ValueError(f"metric name {name!r}: expected lower-case letters, digits and '_'")
        return v

    @field_validator("steps")
    @classmethod
    def _increasing(cls, v: list[int] | list[StepSpec]) -> list[int] | list[StepSpec]:
        weights = [s if isinstance(s, int) else s.set_weight for s in v]
        given = [w for w in weights if w is not None]
        if any(b <= a for a, b in itertools.pairwise(given)):
            raise ValueError(f"expected canary weights that increase, e.g. [5, 25, 50]; got {given}")
        if any(isinstance(s, StepSpec) and s.set_weight == 100 for s in v):
            raise ValueError("a set_weight of 100 is a promotion: end with approval (or none) instead")
        return v

    @model_validator(mode="after")
    def _analysis_metrics_exist(self) -> RolloutSection:
        for i, step in enumerate(self.steps):
            if not isinstance(step, StepSpec) or step.analysis is None:
                continue
            unknown = [m for m in step.analysis.metrics or [] if m not in self.metrics]
            if unknown:
                known = ", ".join(self.metrics) or "none defined"
                raise ValueError(
                    f"steps[{i}].analysis.metrics names {', '.join(unknown)}: expected names under "
                    f"rollout.metrics ({known})"
                )
        return self

    @model_validator(mode="after")
    def _approval_step_has_approvers(self) -> RolloutSection:
        explicit = any(isinstance(s, StepSpec) and s.approval for s in self.steps)
        if explicit and not self.approval.approvers:
            raise ValueError("an `approval` step needs approval.approvers: name who may approve")
        return self

    @model_validator(mode="after")
    def _target_can_shadow(self) -> RolloutSection:
        if self.target == "knative" and self.shadow is not None:
            raise ValueError(
                "Knative (and Cloud Run) cannot mirror requests: set `shadow: null` for this target "
                "or use target kubernetes"
            )
        if self.target == "function" and self.shadow is not None:
            raise ValueError(
                "AWS Lambda aliases cannot mirror requests: set `shadow: null` for the function target "
                "(canary steps and the analysis still judge the candidate against stable)"
            )
        return self

    @model_validator(mode="after")
    def _target_can_stick(self) -> RolloutSection:
        sticky = self.routing.sticky
        if sticky == "header" and self.target != "local":
            raise ValueError(
                f"routing.sticky: header (a hash of a request header) needs launchbay's gateway; the "
                f"{self.target} target's routes cannot hash one"
                + (": use `sticky: cookie`" if self.target == "kubernetes" else "")
            )
        if sticky == "cookie" and self.target in ("knative", "function"):
            raise ValueError(
                f"routing.sticky: the {self.target} target cannot route by cookie: set `sticky: null` "
                "(pinning still works)"
            )
        return self

    @model_validator(mode="after")
    def _baseline_fits(self) -> RolloutSection:
        if not self.baseline:
            return self
        if self.target != "local":
            raise ValueError(
                f"rollout.baseline: the {self.target} target has no baseline server yet (local target only)"
            )
        weights = [s if isinstance(s, int) else s.set_weight for s in self.steps]
        if any(w is not None and w > 50 for w in weights):
            raise ValueError(
                "rollout.baseline: the baseline gets the candidate's share, so weights go up to 50 "
                f"(got {max(w for w in weights if w is not None)})"
            )
        return self

    def unreachable(self) -> list[str]:
        """The analyses that cannot collect `min_samples` requests in their window at
        `expected_rps` (each one line: which, how many it would hold, what would fix it)."""
        rate, problems = self.expected_rps, []
        window = max(self.analysis_window, self.interval)
        if self.shadow is not None and rate * window < self.min_samples:
            problems.append(_short_of("shadow", rate, window, self.min_samples))
        weight = 0
        for item in self.steps:
            if isinstance(item, int):
                weight = item
                share = rate * item / 100
                if share * window < self.min_samples:
                    problems.append(_short_of(f"canary {item}%", share, window, self.min_samples))
            elif item.set_weight is not None:
                weight = item.set_weight
            elif item.analysis is not None and weight:
                own = max(item.analysis.window or window, self.interval)
                share = rate * weight / 100
                if share * own < self.min_samples:
                    problems.append(_short_of(f"analysis at {weight}%", share, own, self.min_samples))
        return problems


def _short_of(what: str, rate: float, window: float, minimum: int) -> str:
    return (
        f"{what}: at {rate:.2g} requests/s a {window:g}s window holds ~{rate * window:.0f}, fewer than "
        f"min_samples {minimum}: it would wait forever -- a window of {minimum / rate:.0f}s or more, a "
        "larger weight or a lower min_samples reaches it"
    )


NotifyEvent = Literal[
    "awaiting-approval", "promoted", "rolled-back", "failed", "aborted", "stalled",
    "drift-detected", "performance-dropped", "retrain-started", "retrain-ended",
]  # fmt: skip


MONITOR_EVENTS: tuple[NotifyEvent, ...] = (
    "drift-detected", "performance-dropped", "retrain-started", "retrain-ended"
)  # fmt: skip
"""What the monitor tells (`monitor:`): ledger events about the model, their action is their name."""
NOTIFY_EVENTS: tuple[NotifyEvent, ...] = (
    "awaiting-approval", "promoted", "rolled-back", "failed", "aborted", "stalled", *MONITOR_EVENTS
)  # fmt: skip
"""The events a webhook can be told about: a phase a release enters, `stalled` (a step past its
progress deadline, still undecided), or what the production monitor found and started."""
STALLED_ACTION = "progress-deadline"
"""The ledger action of a step that passed its progress deadline (notified as `stalled`)."""


class WebhookSection(Section):
    """One webhook receiver. Its URL is a secret (a Slack incoming-webhook URL is a credential):
    it is read from an environment variable or a file when a notification is sent, never from
    this file and never written to the ledger."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    """The webhook's name in deliveries and `launchbay notify` (letters, digits, _ . -)."""
    format: Literal["json", "slack"] = "json"
    """json: launchbay's event document; slack: a Slack incoming-webhook message."""
    url_env: str | None = None
    """Environment variable holding the webhook's URL (a secret: never in this file)."""
    url_file: str | None = None
    """File holding the webhook's URL (a secret: never in this file)."""
    events: list[NotifyEvent] = Field(default_factory=lambda: list(NOTIFY_EVENTS))
    """Which events are sent: see the events reference; default: all of them."""

    @model_validator(mode="before")
    @classmethod
    def _no_url_in_file(cls, data: Any) -> Any:
        if isinstance(data, dict) and "url" in data:
            raise ValueError(
                "a webhook URL is a secret and does not belong in launchbay.yaml: give url_env "
                "(an environment variable holding it) or url_file (a file holding it)"
            )
        return data

    @model_validator(mode="after")
    def _one_source(self) -> WebhookSection:
        if (self.url_env is None) == (self.url_file is None):
            raise ValueError(f"webhook {self.name!r}: give exactly one of url_env or url_file")
        return self


class NotificationsSection(Section):
    """Who is told when a release needs someone or ends (`notifications:`)."""

    webhooks: list[WebhookSection] = Field(default_factory=list)
    """Webhooks told when a release needs someone (approval, stalled) or ends."""
    attempts: int = Field(default=5, ge=1, le=20)
    """Deliveries tried per notification and receiver (the first and its retries)."""
    backoff: Duration = 1.0
    """Wait before the first retry; doubled for each next one (at most 60 s)."""
    timeout: Duration = 5.0
    """How long one delivery may take."""
    max_age: Duration = 3600.0
    """Events older than this are never sent (a receiver configured today is not told of last week)."""
    page_url: str | None = None
    """The release managers' page (`launchbay ui`), linked from each notification."""

    @model_validator(mode="after")
    def _names_distinct(self) -> NotificationsSection:
        names = [w.name for w in self.webhooks]
        if len(set(names)) != len(names):
            raise ValueError(f"notifications.webhooks: names must differ (got {', '.join(names)})")
        return self
