"""The reconciler converges any world to the ledger's, from whatever it finds, and acts on nothing else."""

from __future__ import annotations

import fcntl
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rollout_fakes import FakeTarget, World, world

from launchbay.errors import EnvironmentProblem
from launchbay.rollout.engine import operations
from launchbay.rollout.engine.desired import Desired
from launchbay.rollout.engine.phases import Phase
from launchbay.rollout.engine.plan import Plan, SetWeight, Shadow
from launchbay.rollout.engine.reconciler import Reconciler
from launchbay.rollout.engine.release import LedgerUnavailable, Release
from launchbay.rollout.targets.base import Routes

PLAN = Plan(steps=(Shadow(seconds=5, max_disagreement=0.02), SetWeight(percent=20), SetWeight(percent=50)))


def released(w: World, version: str = "2", stable: str = "1") -> Release:
    return w.ledger.create(
        model="fraud-detector", version=version, author="dana", stable_version=stable, plan=PLAN
    )


def matches(w: World, want: Desired) -> bool:
    """The fake world is the desired one: routes by version, exactly the servers that must run."""
    return want.same_routes(w.target.routes()) and set(w.target.servers) == set(want.serving)


def test_a_decision_nobody_acted_on_is_acted_on_by_the_next_pass(tmp_path: Path) -> None:
    w = world(tmp_path)
    r = released(w)
    r = w.ledger.move(r, Phase.VERIFIED, actor="c", action="verified")
    w.converge()  # the candidate is started
    r = w.ledger.move(r, Phase.CANARY, actor="c", action="step", step_index=1)
    w.converge()
    assert w.target.routes().canary_weight == 20
    # On-call's rollback is recorded and its process dies before acting on it:
    w.ledger.move(r, Phase.ROLLED_BACK, actor="oncall", action="rollback", reason="pager")
    assert w.target.routes().canary_weight == 20  # nothing moved by itself
    done = Reconciler(w.ctx).converge()
    assert done.ok and done.desired.describe() == "v1 serves all traffic"
    assert "routes: v1 serves all traffic" in done.done and "stopped v2" in done.done
    assert set(w.target.servers) == {"1"} and w.registry.outcome("2") == "rolled-back"
    again = Reconciler(w.ctx).converge()
    assert again.ok and again.done == ()  # converged: a second pass changes nothing


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    phase=st.sampled_from([Phase.PENDING, Phase.SHADOW, Phase.CANARY, Phase.PROMOTED, Phase.ROLLED_BACK]),
    step=st.integers(0, 2),
    routed=st.sampled_from([None, "1", "2", "3"]),
    canary=st.sampled_from([None, "1", "2", "3"]),
    weight=st.integers(0, 100),
    running=st.sets(st.sampled_from(["1", "2", "3"])),
)
def test_from_any_world_one_pass_reaches_the_ledgers(
    tmp_path_factory: object, phase: Phase, step: int, routed: str | None, canary: str | None,
    weight: int, running: set[str],
) -> None:  # fmt: skip
    tmp = Path(tmp_path_factory.mktemp("w"))  # type: ignore[attr-defined]
    w = world(tmp)
    r = released(w)
    path = {
        Phase.PENDING: [],
        Phase.SHADOW: [(Phase.VERIFIED, None), (Phase.SHADOW, 0)],
        Phase.CANARY: [(Phase.VERIFIED, None), (Phase.SHADOW, 0), (Phase.CANARY, max(step, 1))],
        Phase.PROMOTED: [(Phase.VERIFIED, None), (Phase.SHADOW, 0), (Phase.PROMOTED, None)],
        Phase.ROLLED_BACK: [(Phase.VERIFIED, None), (Phase.SHADOW, 0), (Phase.ROLLED_BACK, None)],
    }[phase]
    for to, index in path:
        r = w.ledger.move(r, to, actor="c", action="step", step_index=index)
    # Scramble the world: servers up or down at random, routes anywhere.
    w.target.servers = {v: 99 for v in running}
    if routed is not None and routed in running and (canary is None or canary in running):
        w.target.current = Routes(
            stable=w.target.backend(routed),
            canary=w.target.backend(canary) if canary else None,
            canary_weight=weight if canary else 0,
        )
    done = Reconciler(w.ctx, ready_timeout=1).converge()
    want = Reconciler(w.ctx).desired()
    assert done.ok, done.problems
    assert matches(w, want), (w.target.routes(), w.target.servers, want)
    assert w.registry.aliases["champion"] == want.champion


def test_a_candidate_that_cannot_even_be_started_fails_its_release(tmp_path: Path) -> None:
    class Refusing(FakeTarget):
        def deploy(self, model: str, version: str) -> None:
            if version == "2":
                raise EnvironmentProblem("the Bento's signature does not verify")
            super().deploy(model, version)

    w = world(tmp_path, target=Refusing())
    r = w.ledger.move(released(w), Phase.VERIFIED, actor="c", action="verified")
    done = Reconciler(w.ctx).converge()
    now = w.ledger.get(r.id)
    assert now.phase is Phase.FAILED and done.ok and "2" not in w.target.servers
    failed = [e for e in w.ledger.history(release_id=r.id) if e.action == "deploy-failed"]
    assert failed[0].actor == "launchbay-reconciler" and "signature does not verify" in failed[0].reason


def test_the_previous_stable_stops_when_its_grace_ends_once_that_is_on_record(tmp_path: Path) -> None:
    w = world(tmp_path)
    r = w.ledger.move(released(w), Phase.VERIFIED, actor="c", action="verified")
    w.converge()
    w.ledger.move(r, Phase.PROMOTED, actor="alice", action="approved")
    w.converge()
    assert set(w.target.servers) == {"1", "2"}  # warm for the grace period (30 s)
    w.clock.now += 31
    record = w.ctx.ledger.record

    def unwritable(*_a: object, **_k: object) -> None:
        raise LedgerUnavailable("the ledger (sqlite:///x) cannot be written: disk I/O error")

    w.ctx.ledger.record = unwritable  # type: ignore[method-assign]
    stuck = Reconciler(w.ctx).converge()
    assert not stuck.ok and "keeps running until its retirement is recorded" in stuck.problems[0]
    assert set(w.target.servers) == {"1", "2"}  # nothing moves that cannot be recorded
    w.ctx.ledger.record = record  # type: ignore[method-assign]
    done = Reconciler(w.ctx).converge()
    assert done.ok and set(w.target.servers) == {"2"}
    (retired,) = [e for e in w.ledger.history(release_id=r.id) if e.action == "retired-previous"]
    assert "grace period over: version 1 stopped" in retired.reason


def test_a_pass_whose_ledger_moves_under_it_derives_again_and_ends_on_the_newest(tmp_path: Path) -> None:
    w = world(tmp_path)
    r = w.ledger.move(released(w), Phase.VERIFIED, actor="c", action="verified")

    class Racing(FakeTarget):
        """While the candidate starts, on-call aborts the release (another process)."""

        def deploy(self, model: str, version: str) -> None:
            super().deploy(model, version)
            if version == "2":
                operations.abort(w.ctx, str(r.id), "oncall", "wrong data")

    racing = Racing()
    racing.servers, racing.current = w.target.servers, w.target.current
    w.ctx.target = racing
    w.target = racing
    done = Reconciler(w.ctx).converge()
    assert w.ledger.get(r.id).phase is Phase.ABORTED
    assert done.ok and done.desired.release is not None and done.desired.release.phase is Phase.ABORTED
    assert set(racing.servers) == {"1"}  # the candidate started for the old state is stopped again


def test_a_pass_stuck_holding_the_lock_delays_another_by_the_lock_timeout_only(tmp_path: Path) -> None:
    w = world(tmp_path)
    lock = tmp_path / "locks" / "fraud-detector.reconcile.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # a pass paused (SIGSTOP) while holding it
        started = time.monotonic()
        done = Reconciler(w.ctx, lock_timeout=0.5).converge()
        took = time.monotonic() - started
    assert done.ok and 0.5 <= took < 3


def test_a_target_that_cannot_act_is_a_problem_said_not_an_exception(tmp_path: Path) -> None:
    class Away(FakeTarget):
        def routes(self) -> Routes:
            raise EnvironmentProblem("the Kubernetes API server at https://k8s is unreachable")

    w = world(tmp_path, target=Away())
    done = Reconciler(w.ctx).converge()
    assert not done.ok and "unreachable" in done.problems[0]
    assert isinstance(done.to_dict()["problems"], list)


def test_the_world_is_derived_at_the_ledgers_time(tmp_path: Path) -> None:
    w = world(tmp_path)
    assert Reconciler(w.ctx).clock() == w.clock.now


def test_events_that_change_nothing_of_the_world_do_not_interrupt_a_pass(tmp_path: Path) -> None:
    w = world(tmp_path)
    r = w.ledger.move(released(w), Phase.VERIFIED, actor="c", action="verified")

    class Chatty(FakeTarget):
        """While the candidate starts, the controller records analysis results (every second)."""

        def deploy(self, model: str, version: str) -> None:
            super().deploy(model, version)
            for _ in range(3):
                w.ledger.record(w.ledger.get(r.id), actor="c", action="analysis", reason="step 1: PASS")

    chatty = Chatty()
    chatty.servers, chatty.current = w.target.servers, w.target.current
    w.ctx.target = chatty
    done = Reconciler(w.ctx).converge()
    assert done.ok and done.done.count("started v2") == 1
    assert done.desired.generation < w.ledger.generation("fraud-detector")  # not derived again


def test_a_server_started_again_elsewhere_gets_its_traffic_back(tmp_path: Path) -> None:
    w = world(tmp_path)
    r = w.ledger.move(released(w), Phase.VERIFIED, actor="c", action="verified")
    w.converge()
    w.ledger.move(r, Phase.CANARY, actor="c", action="step", step_index=1)
    w.converge()
    # Both servers died and were started again on other ports; the routes still name the old ones.
    w.target.addresses = {"1": "http://v1-restarted", "2": "http://v2-restarted"}
    done = Reconciler(w.ctx).converge()
    assert done.ok and done.done == ("routes: v1 80% / v2 20%",), done
    now = w.target.routes()
    assert now.stable is not None and now.stable.url == "http://v1-restarted"
    assert now.canary is not None and now.canary.url == "http://v2-restarted"
    assert Reconciler(w.ctx).converge().done == ()  # and then nothing more to do
