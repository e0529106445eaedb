"""One pass of the production monitor (`Monitor.tick`), and what it says (`Monitor.summary`)."""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from launchbay.checks.live_drift import Detector, threshold_for
from launchbay.checks.live_performance import LossDetector
from launchbay.checks.live_reference import ANSWER, REFERENCE_ARTIFACT, Reference
from launchbay.config import LaunchbayConfig
from launchbay.config.monitor import MonitorSection
from launchbay.errors import LaunchbayError
from launchbay.registry import ModelRef, RunArtifacts
from launchbay.rollout.engine.operations import Rollout
from launchbay.rollout.monitor import retrain
from launchbay.rollout.monitor.labels import FileLabels, LabelSource
from launchbay.rollout.monitor.state import SEEN, State, append_window, log10, prune_window, summary
from launchbay.rollout.targets.base import AnswerSources
from launchbay.serving.answer_log import PATH as ANSWERS_PATH

log = logging.getLogger("launchbay.monitor")

ACTOR = retrain.ACTOR
PAGES = 50
"""Answer-log pages read from one server in one pass (2,000 answers each)."""


def cadence(m: MonitorSection) -> tuple[int, int, float]:
    """(batches between bets, bets kept, alarm level) for the configured times."""
    start_every = max(1, round(m.bet_every / m.every))
    keep = max(1, round(m.keep / (start_every * m.every)))
    return start_every, keep, threshold_for(m.false_alarm_every, m.every, start_every)


class Monitor:
    """The monitor of one model: a pass at a time, its state in `directory`.

    Args:
        feedback_dir: where labels are kept (the local gateway's directory).
    """

    def __init__(
        self,
        ctx: Rollout,
        directory: Path,
        feedback_dir: Path,
        clock: Callable[[], float] = time.time,
        labels: LabelSource | None = None,
        starter: retrain.Starter | None = None,
    ) -> None:
        assert ctx.cfg.monitor is not None, "a monitor needs monitor: in launchbay.yaml"
        self.ctx, self.dir, self.feedback_dir, self.clock = ctx, directory, feedback_dir, clock
        self.labels: LabelSource = labels or FileLabels(feedback_dir)
        self.starter: retrain.Starter = starter or retrain.LocalStarter()
        self.m: MonitorSection = ctx.cfg.monitor
        self.state = State.load(directory)
        # Row digests in the order first seen (a dict keeps it): the oldest are forgotten first.
        self._seen: dict[str, None] = dict.fromkeys(self.state.seen)
        self._reference: tuple[str, Reference] | None = None

    @property
    def cfg(self) -> LaunchbayConfig:
        return self.ctx.cfg

    # -- one pass ---------------------------------------------------------------------------

    def tick(self) -> State:
        """Pull, score, alarm, act; save the state. Never raises for a part that is away."""
        s, now = self.state, self.clock()
        version = self._champion()
        if version is None:
            s.waiting = "no version of the model serves yet"
        else:
            if version != s.version:
                self._watch(version)
            if s.drift is not None:
                self._score(version, now)
                self._act(version, now)
        self._follow_retrain(now)
        prune_window(self.dir, self.m.window, now)
        s.updated_at = now
        s.seen = list(self._seen)
        s.save(self.dir)
        return s

    def _champion(self) -> str | None:
        try:
            stable = self.ctx.target.routes().stable
        except LaunchbayError:
            return self.state.version  # the gateway is away this pass: keep watching the last one
        return stable.version if stable is not None else None

    def _watch(self, version: str) -> None:
        """Start watching a new champion: its own reference, fresh bets."""
        s = self.state
        s.version, s.drift, s.loss, s.alarms, s.pending, s.waiting = version, None, None, [], {}, None
        s.unmonitored = None
        reference = self.reference(version)
        if reference is None:
            s.unmonitored = (
                f"v{version} has no monitoring reference (it was evaluated before launchbay recorded "
                f"one: {REFERENCE_ARTIFACT}); its next retrain will have one"
            )
            return
        start_every, keep, threshold = cadence(self.m)
        watched = self._features(reference)
        bins = [b for b in reference.features if b.name in watched]
        if reference.answer is not None:
            bins.append(reference.answer)
        drift = Detector(bins, threshold, self.m.tolerance, self.m.confidence, start_every, keep)
        s.drift = drift.to_dict()
        if reference.offline is not None:
            limit = reference.offline.limit(self.m.tolerance, self.m.confidence)
            s.loss = LossDetector(limit, threshold, start_every, keep).to_dict()

    def _features(self, reference: Reference) -> set[str]:
        """The features judged: captured, and not only as a hash."""
        c = self.m.capture
        kept = {b.name for b in reference.features} if c.fields == "all" else set(c.fields)
        return kept - set(c.hash)

    def reference(self, version: str) -> Reference | None:
        """The version's monitoring reference (kept beside the state after the first read, and in
        memory while it is watched: every pass scores with it)."""
        if self._reference is not None and self._reference[0] == version:
            return self._reference[1]
        cached = self.dir / f"reference-v{version}.json"
        try:
            self._reference = (version, Reference.from_json(cached.read_text()))
            return self._reference[1]
        except (OSError, ValueError):
            pass
        registry = self.ctx.registry
        if not isinstance(registry, RunArtifacts):
            return None
        try:
            run_id = registry.resolve(ModelRef(self.ctx.model, version)).run_id
        except LaunchbayError:
            return None
        text = registry.run_text(run_id, REFERENCE_ARTIFACT) if run_id else None
        if text is None:
            return None
        reference = Reference.from_json(text)
        self.dir.mkdir(parents=True, exist_ok=True)
        cached.write_text(text)
        self._reference = (version, reference)
        return reference

    def _pull(self, version: str) -> list[dict[str, Any]]:
        """What the champion's servers answered since the last pass."""
        target = self.ctx.target
        if not isinstance(target, AnswerSources):
            return []
        got: list[dict[str, Any]] = []
        urls = target.endpoints(version)
        silent: list[str] = []
        for url in urls:
            cursor = self.state.cursors.get(url, {})
            seq = int(cursor.get("seq", 0))
            for _ in range(PAGES):
                try:
                    doc = httpx.get(f"{url}{ANSWERS_PATH}?since={seq}", timeout=5).raise_for_status().json()
                except httpx.HTTPStatusError as exc:
                    if exc.response.status_code == 404:
                        silent.append(url)
                    break
                except (httpx.HTTPError, ValueError):
                    break  # away this pass: next pass
                if doc.get("instance") != cursor.get("instance"):
                    if cursor and seq:  # a restarted server counts from 1 again
                        seq, cursor = 0, {"instance": doc.get("instance")}
                        continue
                    cursor = {"instance": doc.get("instance")}
                if int(doc.get("oldest", 0)) > seq + 1:
                    self.state.lost += int(doc["oldest"]) - seq - 1
                got += doc.get("entries") or []
                seq = int(doc.get("next", seq))
                if len(doc.get("entries") or []) < 2000:
                    break
            self.state.cursors[url] = {**cursor, "seq": seq}
        if not urls:
            self.state.not_capturing = f"a running server of v{version} (none answers now)"
        elif silent:
            self.state.not_capturing = (
                f"v{version}'s server at {', '.join(silent)} to capture: it started before `monitor:` was "
                "set and keeps no answers; it will from its next start (a release, or a restart)"
            )
        else:
            self.state.not_capturing = None
        return got

    def _score(self, version: str, now: float) -> None:
        s = self.state
        assert s.drift is not None
        drift = Detector.from_dict(s.drift)
        reference = self.reference(version)
        assert reference is not None
        bins = {b.name: b for b in drift.bins}
        values: dict[str, list[Any]] = {name: [] for name in bins}
        kept: list[dict[str, Any]] = []
        for entry in self._pull(version):
            rid, digests = str(entry.get("id")), entry.get("rows") or []
            rows, answers = entry.get("values") or [], entry.get("predictions") or []
            for i, answer in enumerate(answers):
                digest = digests[i] if i < len(digests) else None
                if digest is not None and digest in self._seen:
                    s.repeated += 1  # the same row again: one observation, not many
                    continue
                if digest is not None:
                    self._seen[digest] = None
                s.rows += 1
                row = rows[i] if i < len(rows) and isinstance(rows[i], dict) else {}
                for name in bins:
                    if name == ANSWER:
                        values[name].append(reference.answer_value(answer))
                    elif name in row:
                        values[name].append(row[name])
                row_id = rid if len(answers) == 1 else f"{rid}:{i}"
                s.pending[row_id] = answer
                kept.append(
                    {"id": row_id, "at": entry.get("at"), "version": version, "row": row, "answer": answer}
                )
        for old in list(itertools.islice(self._seen, max(0, len(self._seen) - SEEN))):
            del self._seen[old]
        if len(s.pending) > self.m.capture.size:
            s.pending = dict(list(s.pending.items())[-self.m.capture.size :])
        append_window(self.dir, kept, now)
        drift_stat = drift.update({n: bins[n].index(v) for n, v in values.items() if v})
        s.drift = drift.to_dict()
        losses, labelled = self._labels(reference)
        loss_stat = None
        if s.loss is not None:
            detector = LossDetector.from_dict(s.loss)
            loss_stat = detector.update(losses, labelled)
            s.loss = detector.to_dict()
            if detector.alarm_at == detector.batches and not self._alarmed("performance"):
                self._alarm(
                    "performance",
                    now,
                    loss_stat,
                    detector.threshold,
                    detector.batches,
                    {
                        "labelled": detector.labelled,
                        "losses": detector.losses,
                        "live_rate": round(detector.losses / max(detector.labelled, 1), 4),
                        "offline_rate": round(reference.offline.rate, 4) if reference.offline else None,
                        "limit": round(detector.limit, 4),
                    },
                )
        if drift.alarm_at == drift.batches and not self._alarmed("drift"):
            moved = sorted(drift.evidence().items(), key=lambda kv: -kv[1])[:3]
            self._alarm(
                "drift",
                now,
                drift_stat,
                drift.threshold,
                drift.batches,
                {
                    "features": {k: v for k, v in moved},
                    "shares": {
                        k: {"live": drift.live_shares(k), "reference": bins[k].reference.round(4).tolist()}
                        for k, _ in moved[:1]
                    },
                },
            )
        s.timeline.append(
            {
                "at": round(now, 1),
                "rows": len(kept),
                "labelled": labelled,
                "losses": losses,
                "drift": log10(drift_stat),
                "loss": log10(loss_stat) if loss_stat is not None else None,
                "level": round(math.log10(drift.threshold), 3),
            }
        )

    def _labels(self, reference: Reference) -> tuple[int, int]:
        """Losses and labelled rows among the labels that came since the last pass."""
        losses = labelled = 0
        for rid, label in self.labels.new(self.state):
            self.state.labelled += 1
            if rid in self.state.pending:
                loss = reference.loss(self.state.pending.pop(rid), label)
                if loss is not None:
                    losses, labelled = losses + loss, labelled + 1
        return losses, labelled

    # -- alarms and retrains ----------------------------------------------------------------

    def _alarmed(self, kind: str) -> bool:
        return any(a["kind"] == kind for a in self.state.alarms)

    def _alarm(
        self, kind: str, now: float, stat: float, threshold: float, batch: int, evidence: dict[str, Any]
    ) -> None:
        s = self.state
        bound = f"expected time to a false alarm >= {self.m.false_alarm_every / 86400:g} days"
        if kind == "drift":
            names = ", ".join(f"{k} (10^{v:g})" for k, v in evidence["features"].items())
            reason = f"v{s.version}'s live traffic moved from what it was trained on: {names}; {bound}"
        else:
            reason = (
                f"v{s.version} is wrong on {evidence['live_rate']:.1%} of {evidence['labelled']} "
                "labelled live rows, "
                f"offline {evidence['offline_rate']:.1%} (limit {evidence['limit']:.1%}); {bound}"
            )
        s.alarms.append(
            {
                "kind": kind,
                "key": f"v{s.version}:{kind}:{batch}",
                "at": round(now, 1),
                "statistic": log10(stat),
                "level": round(math.log10(threshold), 3),
                "reason": reason,
                "evidence": evidence,
                "recorded": False,
                "retrain": kind in self.m.retrain.on,
            }
        )
        log.warning("%s", reason)

    def _act(self, version: str, now: float) -> None:
        """Record alarms in the ledger (notified from there); start a retrain when one is due."""
        s = self.state
        ledger = self.ctx.ledger
        for a in s.alarms:
            if a["recorded"]:
                continue
            action = "drift-detected" if a["kind"] == "drift" else "performance-dropped"
            try:
                if self._noted(a["key"]):  # written before a crash lost the state that said so
                    a["recorded"] = True
                    continue
                ledger.note(
                    self.ctx.model,
                    actor=ACTOR,
                    action=action,
                    reason=a["reason"],
                    evidence={
                        "version": version,
                        "key": a["key"],
                        **a["evidence"],
                        "statistic": a["statistic"],
                        "level": a["level"],
                    },
                )
                a["recorded"] = True
            except LaunchbayError as exc:
                s.waiting = f"recording the alarm: {exc.message}"
                return
        due = [a for a in s.alarms if a["retrain"] and not a.get("retrained")]
        if not due:
            s.waiting = None
            return
        if s.retrain is not None and "ended" not in s.retrain:
            s.waiting = f"the retrain started at {_when(s.retrain['started_at'])} is running"
            return
        last = s.retrain["started_at"] if s.retrain else None
        if last is not None and now - last < self.m.retrain.cooldown:
            s.waiting = (
                f"a retrain again after {_when(last + self.m.retrain.cooldown)} (monitor.retrain.cooldown)"
            )
            return
        live = [r for r in ledger.releases(self.ctx.model) if r.phase.live or r.phase.value == "pending"]
        if live:
            s.waiting = f"release {live[0].name} to end before a retrain (one release at a time)"
            return
        need = retrain.needed(self.cfg)
        # Fewer labels came than a retrain needs at all: say so without reading the whole window
        # (days of captured rows) on every pass while waiting.
        win = retrain.labelled_window(self.cfg, self.dir, self.labels.all()) if s.labelled >= need else None
        have = len(win.rows) if win is not None else s.labelled
        if win is None or have < need:
            s.waiting = (
                f"labels: {have} of the {need} captured rows a retrain needs have one "
                "(monitor.retrain.min_labelled, data.min_rows); send them to POST /feedback or "
                "`launchbay feedback FILE`"
            )
            return
        data = self.dir / "retrain" / f"window-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now))}.parquet"
        digest, reference = retrain.write_data(self.cfg, win, data)
        s.retrain = {
            "starting": True,
            "started_at": now,
            "data": str(data),
            "rows": len(win.rows),
            "captured": win.captured,
            "digest": digest,
            "because": [a["kind"] for a in due],
        }
        for a in due:
            a["retrained"] = True
        s.waiting = None
        # On record before it starts, and its process on record right after: a monitor stopped in
        # between never starts a second one (it says it lost track of this one instead).
        s.save(self.dir)
        s.retrain.update(self.starter.start(self.cfg, self.ctx.home, data, reference))
        del s.retrain["starting"]
        s.save(self.dir)
        self._note(
            "retrain-started",
            f"retraining on {len(win.rows)} labelled captured rows "
            f"({'with' if self.m.retrain.include_training_data else 'without'} the training data) "
            f"after {', '.join(a['kind'] for a in due)}",
            {k: s.retrain[k] for k in ("rows", "captured", "digest", "data")},
        )

    def _follow_retrain(self, now: float) -> None:
        run = self.state.retrain
        if run is None or "ended" in run:
            return
        if run.get("starting"):
            ended: dict[str, Any] | None = {
                "succeeded": False,
                "reason": "the monitor stopped while starting it: it may not have started (launchbay status "
                f"shows a release if it did); to retrain by hand: launchbay run --data {run['data']}",
            }
        else:
            ended = self.starter.outcome(run)
        if ended is None:
            return
        run["ended"] = {**ended, "at": round(now, 1)}
        if ended["succeeded"]:
            what = f"v{ended['version']}: release #{ended['release']} is {ended['phase']}"
        else:
            what = f"stopped at {ended.get('stopped_at') or ended.get('phase') or ended.get('reason')}"
        self._note("retrain-ended", f"the retrain ended: {what}", ended)

    def _noted(self, key: str) -> bool:
        return any(e.evidence.get("key") == key for e in self.ctx.ledger.notes(self.ctx.model))

    def _note(self, action: str, reason: str, evidence: dict[str, Any]) -> None:
        try:
            self.ctx.ledger.note(self.ctx.model, actor=ACTOR, action=action, reason=reason, evidence=evidence)
        except LaunchbayError as exc:
            log.error("recording %s: %s", action, exc.message)

    # -- what it says -----------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """What the monitor says now (`launchbay.rollout.monitor.state.summary`)."""
        return summary(self.state, self.m)


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))
