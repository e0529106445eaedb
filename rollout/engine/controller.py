"""The controller: the judge. One idempotent `tick` reads a release, measures, decides, records.

A tick never remembers anything the ledger does not: the release's phase and step say what to do,
and every decision is written to the ledger -- nothing else. What the decision means for the
world (routes, servers, the champion alias) is the reconciler's to make true, and it runs after
every tick, so a decision recorded by a controller killed the next instant is acted on by the
next pass of whoever runs one. Running two ticks at once is safe too: moves are optimistic (see
`Ledger.move`), so only one of them wins.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from launchbay.checks.registered import Verification, verify_registered
from launchbay.checks.verdict import Verdict
from launchbay.config.rollout import STALLED_ACTION
from launchbay.rollout import replay
from launchbay.rollout.engine import freeze, operations
from launchbay.rollout.engine.analysis import AnalysisResult, Thresholds, analyse_canary, analyse_shadow
from launchbay.rollout.engine.operations import CONTROLLER, Rollout
from launchbay.rollout.engine.phases import Phase
from launchbay.rollout.engine.plan import WITHOUT_OFFLINE, Analysis, Pause, SetWeight, Shadow
from launchbay.rollout.engine.reconciler import Converged, Reconciler
from launchbay.rollout.engine.release import ConcurrentChange, Release
from launchbay.rollout.engine.samples import Samples, sample
from launchbay.rollout.metrics.base import Measurement, MetricsProvider
from launchbay.rollout.metrics.join import ShadowJoin
from launchbay.rollout.metrics.queries import measure_at_most, measure_canary, measure_shadow, templates_for
from launchbay.rollout.targets.base import LATENCY_BUCKETS


def _analysis_reason(step_index: int, verdict: Verdict) -> str:
    """How an analysis event is recorded (`step 2: FAIL`); `_tolerated` counts FAILs by it."""
    return f"step {step_index + 1}: {verdict.value}"


Verifier = Callable[[Rollout, Release], Verification]
"""Checks a release's registered version before it gets traffic (the signature gate)."""


class Controller:
    """Drives releases of one model forward, one tick at a time."""

    def __init__(
        self,
        ctx: Rollout,
        metrics: MetricsProvider,
        clock: Callable[[], float] = time.time,
        verifier: Verifier | None = None,
    ) -> None:
        self.ctx = ctx
        self.metrics = metrics
        self.clock = clock
        self.verifier = verifier or _verify_registered
        self.queries = templates_for(
            ctx.cfg.rollout.target, ctx.cfg.rollout.queries, ctx.model, ctx.cfg.kubernetes.namespace
        )
        # The latency test counts requests in the local gateway's histogram buckets.
        self._own_histograms = ctx.cfg.rollout.target == "local" and ctx.cfg.rollout.queries.p95_ms is None
        r = ctx.cfg.rollout
        self.thresholds = Thresholds(
            slo=r.slo,
            min_samples=r.min_samples,
            task=ctx.cfg.model.task,
            confidence=r.confidence,
            metrics=dict(r.metrics),
        )
        # What was last written per release, so that a long wait does not flood the log with
        # identical results (a restarted controller writes the current one once more).
        self._last: dict[int, tuple[int, str]] = {}
        self._counts: dict[tuple[int, int], list[int]] = {}
        self.last_result: dict[int, AnalysisResult] = {}
        self.samples = Samples()
        self.reconciler = Reconciler(ctx, clock=clock)
        self.last_world: Converged | None = None
        self._unconverged: dict[int, int] = {}  # release id -> passes in a row that could not act
        self._said: dict[int, str] = {}  # release id -> the last world problem recorded for it
        self._stalled: set[tuple[int, int]] = set()  # (release id, step) past its deadline, said
        self._held: set[tuple[int, str, float]] = set()  # (release id, freeze, since) said held
        endpoints = getattr(ctx.target, "endpoints", None)  # a cluster target's pods
        self.joiner = ShadowJoin(endpoints) if endpoints is not None and ctx.cfg.rollout.shadow else None

    # -- entry points -----------------------------------------------------------------------

    def pending_work(self) -> list[Release]:
        """Releases a tick has something to decide for: pending and live ones."""
        mine = self.ctx.ledger.releases(self.ctx.model)
        return [r for r in mine if r.phase.live or r.phase is Phase.PENDING]

    def tick_all(self) -> list[Release]:
        """Decide for every release that has work, then converge the world once."""
        ticked = [self._decide(r) for r in self.pending_work()]
        for rid in self.samples.held() - {r.id for r in ticked if r.phase.live}:
            # Ended by a person (approved, aborted, rolled back by on-call) since our last tick.
            self._write_samples(self.ctx.ledger.get(rid))
        self.world()
        return [self.ctx.ledger.get(r.id) for r in ticked]

    def _write_samples(self, r: Release, held: list[dict[str, Any]] | None = None) -> None:
        """Record measurements not yet in the ledger (all of the release's held ones by default)."""
        held = self.samples.take(r.id) if held is None else held
        if held:
            step = min(r.step_index, max(len(r.plan) - 1, 0)) + 1
            self.ctx.ledger.record(r, actor=CONTROLLER, action="measurements",
                                   reason=f"{len(held)} measurements up to step {step}",
                                   evidence={"samples": held})  # fmt: skip

    def tick(self, release: Release) -> Release:
        """Move one release forward as far as its evidence allows right now, then converge the
        world to what the ledger says."""
        self._decide(release)
        self.world()
        return self.ctx.ledger.get(release.id)

    def _decide(self, release: Release) -> Release:
        r = self.ctx.ledger.get(release.id)
        try:
            if r.phase is Phase.PENDING:
                self._verify(r)
            elif r.phase is Phase.VERIFIED:
                self._start(r)
            elif r.phase.live:
                self._step(r)
        except ConcurrentChange:
            pass  # someone (on-call, another controller) moved it: the next tick sees their move
        return self.ctx.ledger.get(r.id)

    def world(self) -> Converged:
        """One reconciler pass; a live release whose world cannot be made true pass after pass
        (the target refuses: RBAC, a conflict, an API server away) is rolled back at the limit.

        The failures are recorded (`target-error`) and counted like failed measurements; the
        count lives in this process (a restarted controller counts afresh, as for INCONCLUSIVEs).
        """
        converged = self.reconciler.converge()
        newest = converged.desired.release
        if converged.ok or newest is None:
            self._unconverged.clear()
            self.last_world = converged
            return converged
        problem = "; ".join(converged.problems)
        if newest.phase.live:
            errors = self._unconverged.get(newest.id, 0) + 1
            self._unconverged = {newest.id: errors}
            self.ctx.ledger.record(newest, actor=CONTROLLER, action="target-error", reason=problem)
            if errors >= self.ctx.cfg.rollout.max_consecutive_errors:
                with contextlib.suppress(ConcurrentChange):
                    self._rollback(newest, f"{errors} attempts in a row failed to act: {problem}")
                converged = self.reconciler.converge()
        elif self._said.get(newest.id) != problem:
            self._said = {newest.id: problem}
            self.ctx.ledger.record(newest, actor=CONTROLLER, action="target-error", reason=problem)
        self.last_world = converged
        return converged

    # -- phases -----------------------------------------------------------------------------

    def _verify(self, r: Release) -> Release:
        checked = self.verifier(self.ctx, r)
        ok = checked.verdict.ok
        return self.ctx.ledger.move(
            r,
            Phase.VERIFIED if ok else Phase.FAILED,
            actor=CONTROLLER,
            action="verified" if ok else "verify-failed",
            reason=checked.message,
            evidence=checked.to_dict(),
        )

    def _start(self, r: Release) -> Release:
        """Wait for the candidate (started by the reconciler, once) and stable to be ready."""
        target = self.ctx.target
        if not target.started(r.version):
            return r  # the reconciler starts it in this tick's pass
        health = target.health(r.version)
        if health is Verdict.FAIL:
            # Started once only: a candidate that dies while starting is a failed release, not
            # something to restart until it happens to come up.
            return self._fail(r, "its server died while starting:\n" + self._log_tail(r.version))
        stable_ready = r.stable_version is None or target.health(r.stable_version) is Verdict.PASS
        if health is Verdict.PASS and stable_ready:
            failed = self._preflight(r)
            return failed if failed is not None else self._enter(r, 0)
        waited = self.clock() - (r.step_started_at or r.updated_at)
        if waited > self.ctx.cfg.rollout.start_timeout:
            return self._fail(r, f"not ready after {waited:.0f}s (rollout.start_timeout)")
        return r

    def _preflight(self, r: Release) -> Release | None:
        """Replay captured requests to the candidate alone (rollout.preflight.replay), once per
        release, before it gets any mirrored traffic; the failed release when it could not take them."""
        section = self.ctx.cfg.rollout.preflight.replay
        if section is None or r.stable_version is None:
            return None
        if any(e.action in ("replay", "replay-skipped") for e in self.ctx.ledger.history(release_id=r.id)):
            return None
        reader = getattr(self.ctx.target, "captured", None)  # the gateway's sample, or stable's pods'
        captured = reader(r.stable_version) if reader is not None else None
        if captured is None:
            why = f"the {self.ctx.cfg.rollout.target} target keeps no requests to replay"
            if reader is not None:
                why = ("no requests captured yet (the local gateway, or stable's servers in a cluster, "
                       "keep them once rollout.preflight.replay is set)")  # fmt: skip
            skipped = f"replay skipped: {why}"
            self.ctx.ledger.record(r, actor=CONTROLLER, action="replay-skipped", reason=skipped)
            return None
        slo = self.ctx.cfg.rollout.slo
        legs = replay.plan(section, captured.peak_rps)
        timeout = max(2.0, 4 * slo.p95_latency_ms / 1000)
        replay.replay(self.ctx.target.backend(r.version).url, captured.bodies, legs, timeout)
        result = replay.judge(legs, slo, captured.peak_rps)
        kept = {"captured": captured.seen, "replayed": len(captured.bodies)}
        evidence = {"replay": {**result.to_dict(), **kept}}
        if result.verdict is Verdict.FAIL:
            why = f"replay before shadow: {result.reason}"
            return self.ctx.ledger.move(r, Phase.FAILED, actor=CONTROLLER, action="replay-failed", reason=why,
                                        evidence=evidence)  # fmt: skip
        said = f"replay before shadow: {result.verdict.value}: {result.reason}"
        self.ctx.ledger.record(r, actor=CONTROLLER, action="replay", reason=said, evidence=evidence)
        return None

    def _fail(self, r: Release, reason: str) -> Release:
        return self.ctx.ledger.move(r, Phase.FAILED, actor=CONTROLLER, action="deploy-failed", reason=reason)

    def _enter(self, r: Release, index: int) -> Release:
        """Record the move to step `index` (or promotion past the last step), then act on it --
        unless it would give the candidate more traffic during a change freeze: then it holds."""
        if self._frozen(r, index):
            return r
        measured = {"samples": held} if (held := self.samples.take(r.id)) else {}
        if index >= len(r.plan):
            reason = "every step passed" if r.plan else "first version: it serves all traffic"
            return self.ctx.ledger.move(
                r, Phase.PROMOTED, actor=CONTROLLER, action="promoted", reason=reason, evidence=measured
            )
        step = r.plan[index]
        return self.ctx.ledger.move(
            r,
            step.phase,
            actor=CONTROLLER,
            action="step",
            reason=f"step {index + 1}/{len(r.plan)}: {step.describe()}",
            step_index=index,
            evidence=measured,
        )

    def _frozen(self, r: Release, index: int) -> bool:
        """Whether a freeze holds `r` before step `index`; said once per release and freeze."""
        if not r.plan:
            return False  # a model's first version: nothing serves yet, nothing to protect
        now_weight = r.plan.traffic(r.step_index).canary_weight if r.phase.live else 0
        more = index >= len(r.plan) or r.plan.traffic(index).canary_weight > now_weight
        frozen = freeze.active(self.ctx.cfg, self.ctx.ledger, r.model, self.clock()) if more else None
        if frozen is None:
            return False
        said = (r.id, frozen.name, frozen.since)
        if said not in self._held:
            self._held.add(said)
            what = "promotion"
            if index < len(r.plan):
                what = f"step {index + 1}/{len(r.plan)} ({r.plan[index].describe()})"
            self.ctx.ledger.record(r, actor=CONTROLLER, action=freeze.HELD,
                                   reason=f"{what} waits: frozen by {frozen.describe()}",
                                   evidence={"freeze": frozen.to_dict()})  # fmt: skip
        return True

    def _step(self, r: Release) -> Release:
        step = r.plan[r.step_index]
        if self.ctx.target.health(r.version) is Verdict.FAIL:
            return self._rollback(r, "the candidate's server died:\n" + self._log_tail(r.version))
        if isinstance(step, SetWeight):
            return self._enter(r, r.step_index + 1)
        result = self._analyse(r)
        if result is None:
            return r
        verdict = result.verdict
        # Per step: FAILs so far (each tolerated one is on record, so a restarted controller
        # resumes the count), and INCONCLUSIVEs in a row (in memory: a restart counts afresh).
        count = self._counts.get((r.id, r.step_index))
        if count is None:
            count = self._counts[(r.id, r.step_index)] = [self._tolerated(r), 0]
        if verdict is Verdict.FAIL:
            count[0] += 1
            allowed = step.failure_limit if isinstance(step, Analysis) else 0
            if count[0] > allowed:
                why = f"analysis failed: {result.why()}"
                if allowed:
                    why = f"analysis failed {count[0]} times (failure_limit {allowed}): {result.why()}"
                return self._rollback(r, why, result)
            self._record(r, result, consecutive_errors=0, force=True)
            return self.ctx.ledger.get(r.id)
        count[1] = count[1] + 1 if verdict is Verdict.INCONCLUSIVE else 0
        limit = step.inconclusive_limit if isinstance(step, Analysis) else None
        if limit is not None and count[1] >= limit:
            return self._rollback(
                r, f"{count[1]} inconclusive analyses in a row (inconclusive_limit {limit})", result
            )
        if verdict is Verdict.ERROR:
            errors = r.consecutive_errors + 1
            self._record(r, result, consecutive_errors=errors, force=True)
            if errors >= self.ctx.cfg.rollout.max_consecutive_errors:
                return self._rollback(
                    r, f"{errors} analyses in a row could not measure (metrics unavailable)", result
                )
            return self.ctx.ledger.get(r.id)
        self._record(r, result, consecutive_errors=0)
        elapsed = self.clock() - (r.step_started_at or r.updated_at)
        if isinstance(step, Shadow | Analysis) and verdict is Verdict.PASS and elapsed >= step.seconds:
            return self._enter(r, r.step_index + 1)
        if isinstance(step, Shadow | Analysis) and elapsed > self.deadline(r):
            return self._past_deadline(r, result, elapsed)
        if isinstance(step, Pause) and elapsed >= step.seconds:
            return self._enter(r, r.step_index + 1)  # watched while it lasted; not a gate
        return r  # an approval waits for a person, analysis going on meanwhile

    def deadline(self, r: Release) -> float:
        """Seconds the current step may go on without deciding (`rollout.progress_deadline`, or
        derived from what min_samples takes at `expected_rps` and the step's share of traffic)."""
        step, cfg = r.plan[r.step_index], self.ctx.cfg.rollout
        seconds = float(getattr(step, "seconds", 0.0))
        if cfg.progress_deadline is not None:
            return seconds + cfg.progress_deadline
        share = 1.0 if isinstance(step, Shadow) else max(r.plan.traffic(r.step_index).canary_weight, 1) / 100
        needs = cfg.min_samples / (cfg.expected_rps * share)
        return seconds + max(120.0, 3 * needs)

    def _past_deadline(self, r: Release, result: AnalysisResult, elapsed: float) -> Release:
        """A step that has not decided by its deadline says so once (the `stalled` notification:
        what it waits for), then does what `rollout.on_deadline` says."""
        if (r.id, r.step_index) in self._stalled or self._stalled_on_record(r):
            self._stalled.add((r.id, r.step_index))
            return r
        self._stalled.add((r.id, r.step_index))
        how = self.ctx.cfg.rollout.on_deadline
        waits = result.waiting() or "a passing analysis"
        said = (
            f"step {r.step_index + 1}/{len(r.plan)} ({r.plan[r.step_index].describe()}) has not decided in "
            f"{elapsed:.0f}s (progress deadline {self.deadline(r):.0f}s); waiting for {waits}"
        )
        if how == "rollback":
            return self._rollback(r, f"{said}; rolled back (rollout.on_deadline)", result)
        if how == "abort":
            return self.ctx.ledger.move(
                r, Phase.ABORTED, actor=CONTROLLER, action="aborted",
                reason=f"{said}; aborted (rollout.on_deadline)", evidence={"analysis": result.evidence()},
            )  # fmt: skip
        self.ctx.ledger.record(
            r, actor=CONTROLLER, action=STALLED_ACTION, evidence={"analysis": result.evidence()},
            reason=f"{said}; holding (rollout.on_deadline: hold): `launchbay abort {r.id}` ends it",
        )  # fmt: skip
        return self.ctx.ledger.get(r.id)

    def _stalled_on_record(self, r: Release) -> bool:
        """Whether this step's deadline was already said (by this controller before a restart)."""
        since = r.step_started_at or r.updated_at
        return any(
            e.action == STALLED_ACTION and e.at >= since for e in self.ctx.ledger.history(release_id=r.id)
        )

    def _tolerated(self, r: Release) -> int:
        """The FAILs of the current step already on record (tolerated by its failure_limit)."""
        mine = _analysis_reason(r.step_index, Verdict.FAIL)
        return sum(
            1 for e in self.ctx.ledger.history(release_id=r.id) if e.action == "analysis" and e.reason == mine
        )

    def _analyse(self, r: Release) -> AnalysisResult | None:
        """Measure the current step; None for an approval wait with no canary traffic."""
        assert r.stable_version is not None
        # One sliding window for every step: long enough to hold min_samples at the step's weight,
        # short enough that a candidate going bad dominates it within seconds.
        step = r.step
        own = step if isinstance(step, Analysis) else None
        window = own.window if own is not None and own.window else self.ctx.cfg.rollout.analysis_window
        # Never further back than the release: the gateway's series are per version (and pair),
        # so a version released again moments after its rollback would otherwise be judged on
        # the tail of its previous release's traffic (a 10%-disagreement shadow, say).
        full_window = window
        window = min(window, max(self.clock() - r.created_at, 2.0))
        metrics = self.thresholds.metrics
        if own is not None and own.metrics is not None:
            metrics = {k: v for k, v in metrics.items() if k in own.metrics}
        thresholds = replace(self.thresholds, metrics=metrics, window=window, full_window=full_window)
        # All of a tick's queries go out together under one deadline: a hung metrics backend
        # costs one interval, not one timeout per query.
        deadline = min(max(1.0, self.ctx.cfg.rollout.interval), 5.0)
        if r.phase is Phase.SHADOW:
            if isinstance(step, Shadow):  # its limits were fixed when the release was created
                thresholds = replace(
                    thresholds,
                    max_disagreement=step.max_disagreement,
                    max_score_shift=_or(step.max_score_shift, "max_score_shift"),
                    max_relative_difference=_or(step.max_relative_difference, "max_relative_difference"),
                    shadow_basis=step.basis,
                )
            cand, shadow = measure_shadow(
                self.metrics, r.stable_version, r.version, window, self.queries, deadline
            )
            if self.joiner is not None:  # a cluster: row by row when the pods' answer logs answer
                self.joiner.pull(r.stable_version, r.version)
                if self.joiner.reachable:
                    shadow = self.joiner.stats(window)
            result = analyse_shadow(cand, shadow, thresholds)
            self._sample(r, sample(self.clock(), "shadow", cand, None, shadow))
        else:
            if r.plan.traffic(r.step_index).canary_weight == 0:
                return None
            # With rollout.baseline the candidate is judged against a fresh server of stable at its
            # own share and time (Kayenta's baseline), not the long-running stable.
            basis = "baseline" if r.plan.traffic(r.step_index).baseline else "primary"
            cand, stable = measure_canary(
                self.metrics, r.version, r.stable_version, window, self.queries, deadline,
                user=thresholds.metrics, stable_role=basis,
            )  # fmt: skip
            slo = thresholds.slo
            c95, s95 = cand.p95_ms.value, stable.p95_ms.value
            slower = over_slo = None
            if self._own_histograms and c95 is not None:
                # A p95 over a bound on the point estimate: count the requests behind it.
                if s95 and c95 > slo.max_p95_ratio_vs_stable * s95:
                    slower = self._count(r, slo.max_p95_ratio_vs_stable * s95, window, deadline)
                if c95 > slo.p95_latency_ms:
                    over_slo = self._count(r, slo.p95_latency_ms, window, deadline)
            result = analyse_canary(cand, stable, thresholds, slower, over_slo)
            result.compared_with = "baseline" if basis == "baseline" else "stable"
            self._sample(r, sample(self.clock(), "primary", cand, stable, None))
        self.last_result[r.id] = result
        return result

    def _sample(self, r: Release, one: dict[str, Any]) -> None:
        full = self.samples.add(r.id, one)
        if full:
            self._write_samples(r, full)

    def _count(
        self, r: Release, bound_ms: float, window: float, deadline: float
    ) -> tuple[float, Measurement] | None:
        """The candidate's requests answered within `bound_ms` rounded up to a histogram bucket
        (rounding up only spares the candidate), or None past the last bucket."""
        bound = next((b for b in LATENCY_BUCKETS if b >= bound_ms / 1000), None)
        if bound is None:
            return None
        return bound, measure_at_most(self.metrics, r.version, bound, window, deadline)

    def _record(
        self, r: Release, result: AnalysisResult, consecutive_errors: int, force: bool = False
    ) -> None:
        key = (r.step_index, result.verdict.value)
        if not force and self._last.get(r.id) == key and r.consecutive_errors == consecutive_errors:
            return
        self._last[r.id] = key
        self.ctx.ledger.record(
            r,
            actor=CONTROLLER,
            action="analysis",
            reason=_analysis_reason(r.step_index, result.verdict),
            evidence=result.evidence(),
            consecutive_errors=consecutive_errors,
        )

    def _rollback(self, r: Release, reason: str, result: AnalysisResult | None = None) -> Release:
        evidence: dict[str, Any] = {"analysis": result.evidence()} if result is not None else {}
        if held := self.samples.take(r.id):
            evidence["samples"] = held
        r, _ = operations.end(
            self.ctx,
            r,
            Phase.ROLLED_BACK,
            actor=CONTROLLER,
            action="rollback",
            reason=reason,
            evidence=evidence,
        )
        return r

    def _log_tail(self, version: str) -> str:
        processes = self.ctx.target.processes()
        return processes.log_tail(version) if processes is not None else "(see the target's own logs)"


def _verify_registered(ctx: Rollout, r: Release) -> Verification:
    """Verify the registry's copy of the release's version against the trusted keys."""
    return verify_registered(ctx.cfg, ctx.home, f"{r.model}@{r.version}", ctx.registry)


def run(
    controller: Controller,
    release: Release,
    *,
    interval: float,
    until: Callable[[Release], bool],
    on_tick: Callable[[Release], None] = lambda _r: None,
) -> Release:
    """Tick one release every `interval` seconds until `until(release)` holds."""
    while True:
        started = time.monotonic()
        release = controller.tick(release)
        on_tick(release)
        if until(release):
            return release
        time.sleep(max(0.0, interval - (time.monotonic() - started)))


def reconcile(
    controller: Controller,
    *,
    interval: float,
    once: bool = False,
    observe: Callable[[Release, Release | None], None] = lambda _now, _before: None,
    each_tick: Callable[[], None] = lambda: None,
) -> None:
    """The long-running loop: every `interval` s, one tick for every release that has work.

    `observe(release, as_last_seen)` is called after each tick of each release (with None the
    first time), so a caller can report phase changes and export gauges; `each_tick()` once per
    tick whether or not a release has work (the local target keeps its gateway up with it).
    """
    seen: dict[int, Release] = {}
    while True:
        started = time.monotonic()
        each_tick()
        for r in controller.tick_all():
            observe(r, seen.get(r.id))
            seen[r.id] = r
        if once:
            return
        time.sleep(max(0.0, interval - (time.monotonic() - started)))


def _or(limit: float | None, key: str) -> float:
    """A shadow limit of the step, or (a release recorded before the step had it) the default."""
    return WITHOUT_OFFLINE[key] if limit is None else limit
