"""Random interleavings of release, step, approve, reject, rollback, abort, a crash in the middle of
a reconciler pass, and time passing -- against the real gateway (supervisor and worker processes)
and real server processes: after every step, a fresh reconciler pass brings the world (the
gateway's routes, the servers that run, the champion alias) to exactly what the ledger says.

The model servers are tiny stand-ins (`tests/stub_model.py`, started and stopped as real
processes through launchbay's own records) so that hundreds of steps take a minute; everything
else is launchbay's: the ledger, the reconciler, the local target, the gateway. A crash is the
pass dying at one of its fault points (an exception where SIGKILL would be: the world is left
exactly as written so far, the pass lock is let go as the kernel does for a dead process).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from rollout_fakes import Clock, FakeRegistry, config

from launchbay import procs
from launchbay.home import Home
from launchbay.rollout.engine import operations, reconciler
from launchbay.rollout.engine.desired import Desired
from launchbay.rollout.engine.operations import Rollout
from launchbay.rollout.engine.phases import Phase
from launchbay.rollout.engine.plan import Approval, Plan, SetWeight, Shadow
from launchbay.rollout.engine.reconciler import Reconciler
from launchbay.rollout.engine.release import ConcurrentChange, Release
from launchbay.rollout.ledger.store import SqlLedger
from launchbay.rollout.local.records import record_path
from launchbay.rollout.local.target import LocalTarget

STUB = Path(__file__).resolve().parent.parent / "stub_model.py"
MODEL = "fraud-detector"
GRACE = 30.0
PLAN = Plan(
    steps=(Shadow(seconds=1, max_disagreement=0.05), SetWeight(percent=30), Approval(approvers=("alice",)))
)


class StubTarget(LocalTarget):
    """The local target, its servers the stand-ins: records, gateway, retirement all launchbay's."""

    def deploy(self, model: str, version: str) -> None:
        rec = self.server(version)
        if rec is not None and rec.running:
            return
        port = procs.free_port()
        log = self.servers / f"v{version}.log"
        argv = [sys.executable, str(STUB), str(port), version]
        procs.launch(argv, procs.scrubbed_env(dict(os.environ)), log, port, owner=self.owner).write(
            record_path(self.servers, version)
        )
        procs.wait_http(f"http://127.0.0.1:{port}/readyz", 10)


class Crash(BaseException):
    """A pass dying at a fault point (BaseException: nothing in launchbay catches it)."""


class Interleavings(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        root = Path(os.environ["INTERLEAVINGS_TMP"]) / f"run{time.monotonic_ns()}"
        self.home = Home(root / "home").ensure()
        self.clock = Clock()
        self.clock.now = time.time()
        ledger = SqlLedger(f"sqlite:///{self.home.root / 'ledger.db'}", clock=self.clock)
        cfg = config(grace_period=f"{GRACE:g}s", start_timeout="10s")
        self.target = StubTarget(cfg, self.home)
        self.ctx = Rollout(cfg, self.home, ledger, self.target, FakeRegistry())  # type: ignore[arg-type]
        self.next_version = 1
        first = self._create()
        assert first is not None
        first = self.ctx.ledger.move(first, Phase.VERIFIED, actor="c", action="verified")
        self._pass()
        self.ctx.ledger.move(first, Phase.PROMOTED, actor="c", action="promoted")
        self._pass()

    # -- helpers --------------------------------------------------------------------------------

    def _create(self) -> Release | None:
        version = str(self.next_version)
        self.next_version += 1
        stable = self.target.routes().stable
        try:
            return self.ctx.ledger.create(
                model=MODEL, version=version, author="dana",
                stable_version=stable.version if stable else None, plan=PLAN if stable else Plan(),
            )  # fmt: skip
        except Exception:
            return None

    def _newest(self) -> Release | None:
        return next(iter(self.ctx.ledger.releases(MODEL)), None)

    def _move(self, to: Phase, step: int | None = None, actor: str = "c") -> None:
        r = self._newest()
        assert r is not None
        with contextlib.suppress(ConcurrentChange):
            self.ctx.ledger.move(r, to, actor=actor, action=to.value, step_index=step)

    def _pass(self) -> Any:
        return Reconciler(self.ctx, lock_timeout=1).converge()

    def _live(self, *phases: Phase) -> bool:
        r = self._newest()
        return r is not None and r.phase in phases

    # -- what people, the controller and faults do ----------------------------------------------

    @precondition(lambda self: not self._live(Phase.PENDING, Phase.VERIFIED, Phase.SHADOW, Phase.CANARY,
                                              Phase.AWAITING_APPROVAL))  # fmt: skip
    @rule()
    def release(self) -> None:
        self._create()

    @precondition(lambda self: self._live(Phase.PENDING))
    @rule()
    def verified(self) -> None:
        self._move(Phase.VERIFIED)

    @precondition(lambda self: self._live(Phase.VERIFIED))
    @rule()
    def shadow(self) -> None:
        self._pass()  # the controller enters a step only with the candidate started
        self._move(Phase.SHADOW, 0)

    @precondition(lambda self: self._live(Phase.SHADOW))
    @rule()
    def canary(self) -> None:
        self._move(Phase.CANARY, 1)

    @precondition(lambda self: self._live(Phase.CANARY))
    @rule()
    def awaiting(self) -> None:
        self._move(Phase.AWAITING_APPROVAL, 2)

    @precondition(lambda self: self._live(Phase.AWAITING_APPROVAL))
    @rule()
    def approve(self) -> None:
        self._move(Phase.PROMOTED, actor="alice")

    @precondition(lambda self: self._live(Phase.AWAITING_APPROVAL))
    @rule()
    def reject(self) -> None:
        self._move(Phase.ABORTED, actor="bob")

    @precondition(lambda self: self._live(Phase.PENDING, Phase.VERIFIED, Phase.SHADOW, Phase.CANARY))
    @rule()
    def abort(self) -> None:
        r = self._newest()
        assert r is not None
        operations.abort(self.ctx, str(r.id), "oncall", "")

    @rule()
    def rollback(self) -> None:
        r = self._newest()
        if r is not None and not (r.phase is Phase.PROMOTED and r.stable_version is None):
            operations.rollback(self.ctx, "oncall", "")

    @rule(at=st.sampled_from(["reconcile:started", "reconcile:routes", "reconcile:retired"]))
    def crash_mid_pass(self, at: str) -> None:
        real = reconciler.point

        def crashing(name: str) -> None:
            if name == at:
                raise Crash(at)

        reconciler.point = crashing
        try:
            self._pass()
        except Crash:
            pass
        finally:
            reconciler.point = real

    @rule(seconds=st.sampled_from([1.0, GRACE + 1]))
    def time_passes(self, seconds: float) -> None:
        self.clock.now += seconds

    # -- the invariant --------------------------------------------------------------------------

    @invariant()
    def a_fresh_pass_makes_the_world_the_ledgers(self) -> None:
        started = time.monotonic()
        done = self._pass()
        took = time.monotonic() - started
        want: Desired = done.desired
        assert done.ok, done.problems
        routes = self.target.routes()
        assert want.same_routes(routes), (routes, want)
        running = {v for v in self.target.deployed() if (rec := self.target.server(v)) and rec.running}
        assert running == set(want.serving), (running, want.serving)
        registry = self.ctx.registry
        assert want.champion is None or registry.alias(MODEL, "champion") == want.champion
        assert took < 2.0 + (5 if done.done else 0), took  # servers started: they take their time
        if want.stable is not None:  # and clients are answered by what the ledger says serves
            with httpx.Client(timeout=5) as client:
                answer = client.post(self.target.url + "/predict", json={"row": {"x": 1}})
            assert answer.status_code == 200, answer.text
            assert answer.headers["X-Launchbay-Version"] in {want.stable, want.canary}

    def teardown(self) -> None:
        stopped = self.target.down()
        assert procs.sweep(self.target.owner) == [], stopped


@pytest.fixture
def interleavings_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("INTERLEAVINGS_TMP", str(tmp_path))
    return tmp_path


def test_any_interleaving_of_decisions_and_crashes_ends_with_the_world_the_ledger_says(
    interleavings_tmp: Path,
) -> None:
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(
        Interleavings,
        settings=settings(
            max_examples=int(os.environ.get("INTERLEAVINGS", "12")),
            stateful_step_count=14,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
