"""One controller for a whole cluster: every team's `Model`, every round, while it holds the Lease.

A round lists the Model objects (all namespaces, or the ones the installation names), builds each
model's parts from its spec (rebuilt only when the spec changes), makes sure its trusted keys are
in its namespace, starts a release a GitOps tool asked for, and runs the same `Controller.tick_all`
the one-machine controller runs -- decisions to the shared ledger, then the reconciler converges
routes and servers to it. Last, the Model's status is set to what the ledger says. Level-triggered
throughout: a round recomputes everything from the ledger and the objects, so a controller
killed between any two writes is repaired by the next round of whichever replica leads.

A model name is one registry and ledger name in the whole cluster: when two namespaces claim the
same name, the older object keeps it and the newer one is told why it is not driven.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lightkube import ALL_NS, ApiError, Client
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap
from lightkube.types import PatchType

from launchbay.errors import LaunchbayError, Refused, UsageError
from launchbay.home import Home
from launchbay.rollout import wiring
from launchbay.rollout.engine import operations
from launchbay.rollout.engine.controller import Controller
from launchbay.rollout.engine.release import Release
from launchbay.rollout.exported import ControllerMetrics
from launchbay.rollout.ledger.store import SqlLedger
from launchbay.rollout.monitor.argo import ArgoStarter
from launchbay.rollout.monitor.labels import StoreLabels
from launchbay.rollout.monitor.watch import Monitor
from launchbay.rollout.operator.leader import LeaderElection
from launchbay.rollout.operator.resource import (
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    Onboarded,
    Settings,
    onboard,
    status,
)
from launchbay.rollout.targets.kube_api import Api
from launchbay.rollout.view import monitor_line

log = logging.getLogger(__name__)

Model = create_namespaced_resource(GROUP, VERSION, KIND, PLURAL)
MANAGER = "launchbay-controller"
"""The field manager of everything the controller writes (status, trusted-keys ConfigMaps)."""


@dataclass
class Driven:
    """One model's parts, built from one version of its spec."""

    onboarded: Onboarded
    controller: Controller
    keys_applied: dict[str, str] | None = None
    seen: dict[int, Release] = field(default_factory=dict)
    monitor: Monitor | None = None
    monitor_at: float = 0.0
    """When the monitor's last pass started (monotonic)."""
    monitor_pass: threading.Thread | None = None


@dataclass
class Operator:
    """The cluster controller's rounds (leader election and the loop around them: `run`)."""

    client: Client
    settings: Settings
    ledger: SqlLedger
    home: Home
    namespaces: tuple[str, ...] = ()
    exported: ControllerMetrics | None = None
    build: Callable[[Onboarded, SqlLedger, Home], Controller] | None = None
    models: dict[tuple[str, str], Driven] = field(default_factory=dict)

    def objects(self) -> list[dict[str, Any]]:
        """Every Model the installation serves, oldest first (the older claim to a name wins)."""
        found: list[Any] = []
        for ns in self.namespaces or (ALL_NS,):
            found += self.client.list(Model, namespace=ns)
        docs = [o.to_dict() for o in found]
        return sorted(
            docs, key=lambda d: (d["metadata"].get("creationTimestamp") or "", d["metadata"]["name"])
        )

    def round(self) -> dict[tuple[str, str], str | None]:
        """Drive every Model once; the problem each has (None: driven)."""
        outcome: dict[tuple[str, str], str | None] = {}
        owner: dict[str, str] = {}
        for obj in self.objects():
            meta = obj["metadata"]
            key = (meta["namespace"], meta["name"])
            problem: str | None = None
            waiting: str | None = None
            monitored: str | None = None
            driven: Driven | None = None
            try:
                if owner.setdefault(meta["name"], meta["namespace"]) != meta["namespace"]:
                    raise Refused(
                        f"model name {meta['name']} belongs to namespace {owner[meta['name']]} (one "
                        "registry and ledger name per cluster): rename this Model"
                    )
                driven = self._driven(obj)
                self._apply_keys(driven)
                waiting = self._requested(driven)
                for r in driven.controller.tick_all():
                    if self.exported is not None:
                        self.exported.observe(r, driven.seen.get(r.id))
                    driven.seen[r.id] = r
                monitored = self._monitor(driven)
                world = driven.controller.last_world
                if world is not None and not world.ok and world.problems:
                    problem = "; ".join(world.problems)
            except LaunchbayError as exc:
                problem = exc.message
            except ApiError as exc:
                problem = f"Kubernetes API: {exc.status.message}"
            except Exception as exc:  # one team's broken model must not stop every other team's
                log.exception("model %s/%s", *key)
                problem = f"{type(exc).__name__}: {exc}"
            release: Release | None = None
            if owner[meta["name"]] == meta["namespace"]:  # another namespace's releases are not this one's
                with contextlib.suppress(LaunchbayError):
                    release = next(iter(self.ledger.releases(meta["name"])), None)
            if driven is not None and release is not None and release.phase.live:
                waiting = waiting or _analysis_waits(driven.controller, release)
            said = monitored if driven is not None and driven.monitor is not None else None
            self._set_status(obj, status(release, int(meta.get("generation") or 0), problem, waiting, said))
            outcome[key] = problem
        for gone in set(self.models) - set(outcome):
            del self.models[gone]  # deleted Model: its workloads stay (see the uninstall guide)
        return outcome

    def _driven(self, obj: dict[str, Any]) -> Driven:
        onboarded = onboard(obj, self.settings)
        driven = self.models.get(onboarded.key)
        if driven is None or driven.onboarded.digest != onboarded.digest:
            build = self.build or _controller
            driven = Driven(onboarded, build(onboarded, self.ledger, self.home))
            self.models[onboarded.key] = driven
        return driven

    def _monitor(self, driven: Driven) -> str | None:
        """The model's production monitor (`monitor:`): a pass when one is due; what it says."""
        ctx = driven.controller.ctx
        m = ctx.cfg.monitor
        if m is None:
            return None
        if driven.monitor is None:
            o = driven.onboarded
            directory = self.home.root / "monitor" / o.namespace / o.name
            api = getattr(ctx.target, "api", None)
            labels = StoreLabels(ctx.cfg, m.store) if m.store else None
            starter = ArgoStarter(api, m.store) if m.store and isinstance(api, Api) else None
            driven.monitor = Monitor(ctx, directory, directory, labels=labels, starter=starter)
        now = time.monotonic()
        running = driven.monitor_pass is not None and driven.monitor_pass.is_alive()
        if now - driven.monitor_at >= m.every and not running:
            # Its own thread: pulling every pod's answers must never delay a rollback.
            driven.monitor_at = now
            driven.monitor_pass = threading.Thread(
                target=_monitor_pass,
                args=(driven.monitor,),
                name=f"monitor-{driven.onboarded.name}",
                daemon=True,
            )
            driven.monitor_pass.start()
        try:
            return monitor_line(driven.monitor.summary()).plain
        except (RuntimeError, KeyError, ValueError):  # read while its pass writes: the next round says it
            return None

    def _apply_keys(self, driven: Driven) -> None:
        """The model's trusted-keys ConfigMap in its namespace (its pods verify against it)."""
        o = driven.onboarded
        if driven.keys_applied == o.keys:
            return
        cm = ConfigMap(
            metadata=ObjectMeta(name=o.config.kubernetes.trusted_keys_configmap, namespace=o.namespace,
                                labels={"app.kubernetes.io/part-of": "launchbay",
                                        "app.kubernetes.io/name": o.name}),
            data=dict(o.keys),
        )  # fmt: skip
        self.client.apply(cm, field_manager=MANAGER, force=True)
        driven.keys_applied = dict(o.keys)

    def _requested(self, driven: Driven) -> str | None:
        """Start the release `spec.release` asks for, once per version; what it waits for if it
        cannot start yet (another release of the model is live)."""
        o = driven.onboarded
        if o.requested is None:
            return None
        version, author = o.requested
        if any(r.version == version for r in self.ledger.releases(o.name)):
            return None  # asked for and started already (whatever became of it)
        try:
            operations.create(driven.controller.ctx, version, author)
        except Refused as exc:
            return f"the requested release of version {version} to start: {exc.message}"
        except UsageError as exc:
            raise UsageError(f"spec.release: {exc.message}") from None
        return None

    def _set_status(self, obj: dict[str, Any], doc: dict[str, Any]) -> None:
        """Write the status when it says something new (not on every round: each write is an
        event to every watcher of Models). The object was just listed: its status is the last one
        written."""
        meta = obj["metadata"]
        if _same(obj.get("status") or {}, doc):
            return
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
            "status": doc,
        }
        try:
            self.client.patch(Model.Status, meta["name"], body, namespace=meta["namespace"],
                              patch_type=PatchType.APPLY, field_manager=MANAGER, force=True)  # fmt: skip
        except ApiError as exc:
            log.warning("status of %s/%s: %s", meta["namespace"], meta["name"], exc.status.message)


def _monitor_pass(monitor: Monitor) -> None:
    try:
        monitor.tick()
    except Exception:  # a bug in one pass must not stop the next
        log.exception("monitor pass")


def _same(before: dict[str, Any], now: dict[str, Any]) -> bool:
    """Equal but for the times they were written."""

    def strip(d: dict[str, Any]) -> dict[str, Any]:
        conditions = [
            {k: v for k, v in c.items() if k != "lastTransitionTime"} for c in d.get("conditions") or []
        ]
        return {**{k: v for k, v in d.items() if k != "updatedAt"}, "conditions": conditions}

    return bool(before) and strip(before) == strip(now)


def _analysis_waits(c: Controller, live: Release) -> str | None:
    """What the live release's undecided analysis waits for, and until when it may wait (its
    progress deadline, after which `rollout.on_deadline` acts)."""
    result = c.last_result.get(live.id)
    if result is None or not result.waiting() or live.step_started_at is None:
        return None
    try:
        deadline = c.deadline(live)
    except IndexError:  # past its last step: nothing left to wait for
        return None
    until = datetime.datetime.fromtimestamp(live.step_started_at + deadline, datetime.UTC)
    return f"{result.waiting()} (until {until:%Y-%m-%dT%H:%M:%SZ}, then rollout.on_deadline)"


def _controller(o: Onboarded, ledger: SqlLedger, home: Home) -> Controller:
    ctx = wiring.rollout(o.config, home, ledger)
    return Controller(ctx, wiring.metrics(ctx))


@dataclass
class Health:
    """What the probes answer: live while rounds (or, on a standby, lease attempts) complete in
    time; ready once one has completed since the last failure to reach the API server."""

    stall_after: float
    last_progress: float = field(default_factory=time.monotonic)
    ready: bool = False
    leading: bool = False
    last_error: str | None = None

    def progressed(self, ok: bool, error: str | None = None) -> None:
        self.last_progress = time.monotonic()
        self.ready, self.last_error = ok, error

    def live(self) -> tuple[bool, str]:
        idle = time.monotonic() - self.last_progress
        if idle > self.stall_after:
            return False, f"no round completed for {idle:.0f} s (limit {self.stall_after:.0f} s)"
        return True, f"last round {idle:.1f} s ago"


def run(
    op: Operator,
    election: LeaderElection,
    health: Health,
    interval: float,
    stopping: threading.Event,
    once: bool = False,
    on_round: Callable[[dict[tuple[str, str], str | None]], None] | None = None,
) -> None:
    """Rounds every `interval` seconds while leading; lease attempts while standing by."""
    try:
        while not stopping.is_set():
            started = time.monotonic()
            leading = election.try_acquire_or_renew()
            if leading != health.leading:
                log.info("%s the lease", "holding" if leading else "not holding")
            health.leading = leading
            if leading:
                try:
                    outcome = op.round()
                    health.progressed(True)
                    if on_round is not None:
                        on_round(outcome)
                except ApiError as exc:
                    health.progressed(False, exc.status.message)
                    log.error("listing Models: %s", exc.status.message)
                except LaunchbayError as exc:
                    health.progressed(False, exc.message)
                    log.error("%s", exc.message)
            else:
                health.progressed(True)
            if once:
                return
            stopping.wait(max(0.0, interval - (time.monotonic() - started)))
    finally:
        election.release()
