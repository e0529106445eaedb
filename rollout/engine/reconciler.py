"""The reconciler: the one code that changes the world, and only ever towards what the ledger says.

A pass reads the model's releases (`Ledger.snapshot`), derives the world they call for
(`desired`), compares it with the world as the target reports it, and acts on the difference:
servers that must run are started, routes are set, servers nobody needs are drained and stopped,
the registry's `champion` alias and outcome tag are moved. It remembers nothing between passes,
so a pass started at any moment -- after a crash between a ledger write and its effect, after a
restart, twice at once -- converges from whatever it finds, like a Kubernetes controller.

Every write to the world carries the ledger generation it was derived from: the gateway refuses
routes older than those it has, and before starting or stopping a server the pass checks that the
ledger has not moved since it read it (else it derives again). A pass on this machine holds a
file lock, so two local passes take turns; a pass that paused while holding it (SIGSTOP) is
waited for only `lock_timeout` seconds -- the fencing above keeps it from undoing anything newer
when it wakes.
"""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from launchbay.checks.verdict import Verdict
from launchbay.errors import LaunchbayError
from launchbay.faults import point
from launchbay.registry import CHAMPION
from launchbay.rollout.engine.desired import Desired, desired
from launchbay.rollout.engine.operations import OUTCOME_TAG, Rollout
from launchbay.rollout.engine.phases import Phase
from launchbay.rollout.engine.release import ConcurrentChange, LedgerUnavailable, Release
from launchbay.rollout.targets.base import Backend, Routes, StaleRoutes

RECONCILER = "launchbay-reconciler"
"""The actor name of what the reconciler records (servers stopped, a candidate that cannot start)."""

KNOWN_RELEASES = 10
"""How many of a model's newest releases name the versions a pass looks for to stop: a version
of an older release was stopped by the passes of its own time."""


class Superseded(Exception):
    """The ledger moved on while a pass was acting on what it had read: derive again."""


@dataclass(frozen=True)
class Converged:
    """What a pass found and did."""

    desired: Desired
    routes: Routes | None
    """The routes in force after the pass, read back from the target (None: it could not say)."""
    problems: tuple[str, ...] = ()
    """What still differs from the desired world, and why."""
    done: tuple[str, ...] = ()
    """What this pass changed."""

    @property
    def ok(self) -> bool:
        """The world is as the ledger says."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        d = self.desired
        return {
            "generation": d.generation,
            "release": d.release.name if d.release is not None else None,
            "desired": {
                "stable": d.stable,
                "canary": d.canary,
                "canary_weight": d.canary_weight,
                "mirror": d.mirror,
                "serving": sorted(d.serving),
                "retire_at": d.retire_at,
                "champion": d.champion,
            },
            "routes": self.routes.to_dict() if self.routes is not None else None,
            "converged": self.ok,
            "problems": list(self.problems),
            "done": list(self.done),
        }


@dataclass
class _Pass:
    want: Desired
    releases: list[Release]
    done: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class Reconciler:
    """Converges one model's world to its ledger, a pass at a time."""

    def __init__(
        self,
        ctx: Rollout,
        clock: Callable[[], float] | None = None,
        lock_timeout: float = 5.0,
        ready_timeout: float | None = None,
    ) -> None:
        """
        Args:
            clock: the time the world is derived at (default: the ledger's).
            lock_timeout: how long to wait for another local pass before going ahead anyway.
            ready_timeout: how long a pass waits for a version it is about to route traffic to
                to become ready (default: `rollout.start_timeout`).
        """
        self.ctx = ctx
        self.clock = clock or ctx.ledger.clock
        self.lock_timeout = lock_timeout
        self.ready_timeout = ctx.cfg.rollout.start_timeout if ready_timeout is None else ready_timeout

    @property
    def model(self) -> str:
        """The model whose world this converges."""
        return self.ctx.model

    def desired(self) -> Desired:
        """The world the ledger calls for now."""
        generation, releases = self.ctx.ledger.snapshot(self.model)
        return desired(self.model, generation, releases, self.clock(), self.ctx.cfg.rollout.grace_period)

    def converge(self) -> Converged:
        """One pass: derive the desired world, act on every difference, report.

        Raises:
            LedgerUnavailable: the ledger cannot be read (nothing is changed then).
        """
        with self._lock():
            for _ in range(5):
                generation, releases = self.ctx.ledger.snapshot(self.model)
                now = self.clock()
                want = desired(self.model, generation, releases, now, self.ctx.cfg.rollout.grace_period)
                work = _Pass(want, releases)
                try:
                    self._act(work)
                except (Superseded, StaleRoutes):
                    continue
                return Converged(want, self._routes(work), tuple(work.problems), tuple(work.done))
        return Converged(
            want, self._routes(work), ("the ledger kept changing during the pass: the next one converges",)
        )

    # -- the pass ---------------------------------------------------------------------------

    def _act(self, work: _Pass) -> None:
        self._start(work)
        routed = self._route(work)
        self._stop(work, routed)
        self._registry(work)
        self._fence(work.want)  # what was decided meanwhile is acted on before the pass reports

    def _fence(self, want: Desired) -> None:
        """Raise Superseded when the ledger moved on since `want` was derived *and* now calls for
        another world. Events that change nothing of it (an analysis result, measurements) do not
        interrupt a pass: the controller writes them every few seconds."""
        if self.ctx.ledger.generation(self.model) == want.generation:
            return
        now = self.desired()
        if not now.same_world(want):
            raise Superseded()

    def _start(self, work: _Pass) -> None:
        """Start what must serve: the candidate once (one that died is judged, not revived),
        stable whenever it is down."""
        want, target = work.want, self.ctx.target
        for version in sorted(want.serving):
            try:
                if version == want.candidate:
                    if target.started(version):
                        continue
                elif target.health(version) is not Verdict.FAIL:
                    continue
                self._fence(want)
                target.deploy(self.model, version)
                point("reconcile:started")
                again = "" if version == want.candidate else " again"
                work.done.append(f"started v{version}{again}")
            except LaunchbayError as exc:
                if version == want.candidate and want.release is not None:
                    self._candidate_cannot_start(want.release, exc)
                work.problems.append(f"v{version} could not be started: {exc.message}")
        baseline = _baseline(target)
        if want.baseline is not None and baseline is not None:
            try:
                if baseline.baseline_health(want.baseline) is Verdict.FAIL:
                    self._fence(want)
                    baseline.deploy_baseline(self.model, want.baseline)
                    work.done.append(f"started a baseline server of v{want.baseline}")
            except LaunchbayError as exc:
                why = f"the baseline server of v{want.baseline} could not be started: {exc.message}"
                work.problems.append(why)

    def _candidate_cannot_start(self, release: Release, exc: LaunchbayError) -> None:
        """A candidate that cannot even be started (its signature refused at deploy, no such
        Bento) has failed: recorded, then the world is derived again without it."""
        if release.phase is not Phase.VERIFIED:
            return
        with contextlib.suppress(ConcurrentChange):
            self.ctx.ledger.move(
                release,
                Phase.FAILED,
                actor=RECONCILER,
                action="deploy-failed",
                reason=f"could not be deployed: {exc.message}",
            )
        raise Superseded()

    def _route(self, work: _Pass) -> set[str]:
        """Set the routes the ledger calls for; return the versions receiving traffic after."""
        want, target = work.want, self.ctx.target
        try:
            current = target.routes()
        except LaunchbayError as exc:
            work.problems.append(f"the routes cannot be read: {exc.message}")
            return set()
        moved = self._moved(current)
        baseline = _baseline(target)
        if want.same_routes(current) and not moved and not self._baseline_moved(current):
            return _versions(current)
        wanted = {v for v in (want.stable, want.canary) if v is not None}
        adding = (wanted - _versions(current)) | (wanted & moved)
        for version in sorted(adding):
            if not self._ready(version):
                work.problems.append(
                    f"v{version} is not ready to serve: traffic stays as it is ({_describe(current)})"
                )
                return _versions(current)
        if want.baseline is not None and not self._ready(want.baseline, baseline=True):
            work.problems.append(f"the baseline server of v{want.baseline} is not ready: traffic stays as "
                                 f"it is ({_describe(current)})")  # fmt: skip
            return _versions(current)
        try:
            routes = want.routes(target.backend, baseline.baseline_backend if baseline is not None else None)
            self._fence(want)
            target.set_routes(routes, generation=want.generation)
        except LaunchbayError as exc:
            work.problems.append(f"the routes could not be set to {want.describe()}: {exc.message}")
            return _versions(current)
        point("reconcile:routes")
        work.done.append(f"routes: {want.describe()}")
        return _versions(routes)

    def _moved(self, current: Routes) -> set[str]:
        """Versions routed to where their server no longer is (it was started again elsewhere,
        e.g. a stable that died and was restarted on another port): their routes must follow."""
        moved: set[str] = set()
        for backend in (current.stable, current.canary):
            if backend is None:
                continue
            try:
                if self.ctx.target.backend(backend.version).url != backend.url:
                    moved.add(backend.version)
            except LaunchbayError:
                continue  # not deployed: the pass starts it, or stops routing to it
        return moved

    def _baseline_moved(self, current: Routes) -> bool:
        """The baseline routed to where its server no longer is (restarted on another port)."""
        baseline = _baseline(self.ctx.target)
        if current.baseline is None or baseline is None:
            return False
        try:
            return baseline.baseline_backend(current.baseline.version).url != current.baseline.url
        except LaunchbayError:
            return True

    def _ready(self, version: str, baseline: bool = False) -> bool:
        """Wait (up to `ready_timeout`) for a version (or its baseline server) to answer its
        readiness probe."""
        deadline = time.monotonic() + self.ready_timeout
        unit = _baseline(self.ctx.target) if baseline else None
        while True:
            health = unit.baseline_health(version) if unit is not None else self.ctx.target.health(version)
            if health is Verdict.PASS:
                return True
            if health is Verdict.FAIL or time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def _stop(self, work: _Pass, routed: set[str]) -> None:
        """Drain and stop the servers of the model's recent versions that nothing needs."""
        want, target = work.want, self.ctx.target
        known = {v for r in work.releases[:KNOWN_RELEASES] for v in (r.version, r.stable_version) if v}
        processes = target.processes()
        if processes is not None:
            known |= set(processes.deployed())  # on this machine every server is listed: all of them
        for version in sorted(known - want.serving):
            try:
                if not target.started(version):
                    continue
                if version in routed:
                    work.problems.append(f"v{version} still receives traffic: it keeps running")
                    continue
                why = self._why_stopped(want, version)
                if version in want.retire_at and not self._recorded_retirement(want.release):
                    # A retirement is the reconciler's own decision (the time ran out): on record
                    # first -- a ledger that cannot be written stops it here, nothing is lost.
                    assert want.release is not None
                    self.ctx.ledger.record(
                        want.release, actor=RECONCILER, action="retired-previous", reason=why
                    )
                self._fence(want)
                target.retire(version)
                point("reconcile:retired")
                work.done.append(f"stopped v{version}")
            except LedgerUnavailable as exc:
                work.problems.append(f"v{version} keeps running until its retirement is recorded: {exc}")
            except LaunchbayError as exc:
                work.problems.append(f"v{version} could not be stopped: {exc.message}")
        baseline = _baseline(target)
        running = baseline.baselines() if baseline is not None else []
        routed_to = routed_baseline(target) if running else set()
        for version in running:
            if version == want.baseline or version in routed_to:
                continue
            try:
                self._fence(want)
                baseline.retire_baseline(version)  # type: ignore[union-attr]
                work.done.append(f"stopped the baseline server of v{version}")
            except LaunchbayError as exc:
                work.problems.append(f"the baseline server of v{version} could not be stopped: {exc.message}")

    @staticmethod
    def _why_stopped(want: Desired, version: str) -> str:
        if version in want.retire_at:
            return f"grace period over: version {version} stopped"
        name = want.release.name if want.release is not None else "the newest release"
        return f"version {version} is not needed by {name}: stopped"

    def _recorded_retirement(self, release: Release | None) -> bool:
        if release is None:
            return True
        return any(e.action == "retired-previous" for e in self.ctx.ledger.history(release_id=release.id))

    def _registry(self, work: _Pass) -> None:
        """Point `champion` at the version serving as stable; tag how the newest release ended."""
        want, registry = work.want, self.ctx.registry
        try:
            if want.champion is not None and registry.alias(self.model, CHAMPION) != want.champion:
                registry.set_alias(self.model, CHAMPION, want.champion)
                work.done.append(f"champion -> v{want.champion}")
            if want.outcome is not None:
                version, outcome = want.outcome
                if work.releases and _tag(registry, self.model, version) != outcome:
                    registry.tag(self.model, version, OUTCOME_TAG, outcome)
        except LaunchbayError as exc:
            work.problems.append(f"the registry could not be updated: {exc.message}")

    def _routes(self, work: _Pass) -> Routes | None:
        try:
            return self.ctx.target.routes()
        except LaunchbayError:
            return None

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """The model's pass lock on this machine: best effort, never more than `lock_timeout`."""
        path = self.ctx.home.root / "locks" / f"{self.model}.reconcile.lock"
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fh = path.open("a")
        except OSError:
            yield  # a read-only state directory (a cluster pod): fencing alone keeps passes safe
            return
        with fh:
            deadline = time.monotonic() + self.lock_timeout
            held = False
            while not held:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    held = True
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        break  # its holder is stuck (stopped, hung): go ahead, fenced
                    time.sleep(0.02)
            try:
                yield
            finally:
                if held:
                    fcntl.flock(fh, fcntl.LOCK_UN)


class _Baselines(Protocol):
    """The optional capability of a target that runs baseline servers (the local target)."""

    def deploy_baseline(self, model: str, version: str) -> None: ...
    def baseline_backend(self, version: str) -> Backend: ...
    def baseline_health(self, version: str) -> Verdict: ...
    def baselines(self) -> list[str]: ...
    def retire_baseline(self, version: str) -> None: ...


def _baseline(target: object) -> _Baselines | None:
    return target if hasattr(target, "deploy_baseline") else None  # type: ignore[return-value]


def routed_baseline(target: object) -> set[str]:
    """The version whose baseline server the target's routes send traffic to now (empty: none)."""
    try:
        routes = target.routes()  # type: ignore[attr-defined]
    except LaunchbayError:
        return set()
    return {routes.baseline.version} if routes.baseline is not None else set()


def _versions(routes: Routes) -> set[str]:
    return {b.version for b in (routes.stable, routes.canary) if b is not None}


def _describe(routes: Routes) -> str:
    if routes.stable is None:
        return "nothing serves"
    if routes.canary is None:
        return f"v{routes.stable.version} serves all traffic"
    return f"v{routes.stable.version} with v{routes.canary.version} at {routes.canary_weight}%"


def _tag(registry: Any, model: str, version: str) -> str | None:
    from launchbay.registry import ModelRef

    try:
        found: str | None = registry.resolve(ModelRef(model, version)).tags.get(OUTCOME_TAG)
    except LaunchbayError:
        return None
    return found
