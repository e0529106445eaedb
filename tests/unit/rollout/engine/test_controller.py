"""The controller's decisions, end state by end state: phases, routes, aliases, the event log."""

from __future__ import annotations

from pathlib import Path

import people
import pytest
from people import approvers
from rollout_fakes import FakeTarget, World, config, world

from launchbay.errors import Refused
from launchbay.rollout.engine import decisions, operations
from launchbay.rollout.engine.phases import Phase
from launchbay.rollout.engine.plan import Analysis, Pause
from launchbay.rollout.engine.release import Release
from launchbay.rollout.local.gateway import LATENCY_BUCKETS
from launchbay.rollout.targets.base import Routes

HAPPY_PATH = [Phase.PENDING, Phase.VERIFIED, Phase.SHADOW, Phase.CANARY, Phase.AWAITING_APPROVAL]


def progress(r: Release) -> tuple[int, int]:
    """How far along its rollout a release is: its phase on the happy path, then its step."""
    return HAPPY_PATH.index(r.phase), r.step_index


def start(w: World, author: str = "dana") -> Release:
    return operations.create(w.ctx, "2", author)


def routes(w: World) -> tuple[str | None, str | None, int, bool]:
    r = w.target.routes()
    return (
        r.stable.version if r.stable else None,
        r.canary.version if r.canary else None,
        r.canary_weight,
        r.mirror,
    )


def test_a_healthy_candidate_goes_shadow_canary_approval_and_traffic_follows(tmp_path: Path) -> None:
    w = world(tmp_path)
    r = start(w)
    assert r.stable_version == "1" and r.phase is Phase.PENDING
    seen = []
    c = w.controller()
    for _ in range(40):
        r = w.ticks(r, 1, c=c)
        seen.append((r.phase, routes(w)))
        if r.phase is Phase.AWAITING_APPROVAL:
            break
    phases = [p for p, _ in seen]
    assert phases[-1] is Phase.AWAITING_APPROVAL
    # Shadow mirrors and sends no user request to the candidate; then 20%, then 50%.
    assert (Phase.SHADOW, ("1", "2", 0, True)) in seen
    assert (Phase.CANARY, ("1", "2", 20, False)) in seen
    assert (Phase.CANARY, ("1", "2", 50, False)) in seen
    assert routes(w) == ("1", "2", 50, False)  # waits for approval at the last weight
    assert w.registry.aliases["champion"] == "1"  # nothing promoted without a person
    actions = [e.action for e in w.ledger.history(release_id=r.id)]
    assert actions[:3] == ["created", "verified", "step"]
    assert "analysis" in actions


def _awaiting(w: World) -> Release:
    r = start(w)
    r = w.ticks(r, 40)
    assert r.phase is Phase.AWAITING_APPROVAL
    return r


def test_approval_four_eyes_and_approvers_only_then_promotion_moves_traffic_and_champion(
    tmp_path: Path,
) -> None:
    w = world(tmp_path, config(approval={"required": True, "approvers": approvers("alice", "dana")}))
    r = _awaiting(w)
    with pytest.raises(Refused, match="dana is the author"):
        people.approve(w.ctx, str(r.id), "dana")
    with pytest.raises(Refused, match="mallory is not an approver"):
        people.approve(w.ctx, str(r.id), "mallory")
    refusals = [e for e in w.ledger.history(release_id=r.id) if e.action == "approve-refused"]
    assert [e.actor for e in refusals] == ["dana", "mallory"]
    assert w.ledger.get(r.id).phase is Phase.AWAITING_APPROVAL

    r = people.approve(w.ctx, "fraud-detector", "alice")
    assert r.phase is Phase.PROMOTED
    assert routes(w) == ("2", None, 0, False)
    assert w.registry.aliases["champion"] == "2"
    approved = w.ledger.history(release_id=r.id)[-1]
    assert approved.actor == "alice" and approved.evidence["analysis"]["verdict"] == "PASS"
    # The previous stable stays warm for the grace period, then is retired (once).
    c = w.controller()
    w.ticks(r, 5, c=c)
    assert "1" in w.target.servers
    w.clock.now += 60
    w.ticks(r, 3, c=c)
    assert w.target.retired == ["1"]
    assert [e.action for e in w.ledger.history(release_id=r.id)].count("retired-previous") == 1


def test_disagreement_in_shadow_rolls_back_before_any_user_request_reaches_the_candidate(
    tmp_path: Path,
) -> None:
    w = world(tmp_path)
    w.metrics.values["disagreement_rows"] = 0.3
    r = w.ticks(start(w), 15)
    assert r.phase is Phase.ROLLED_BACK
    history = w.ledger.history(release_id=r.id)
    assert "prediction disagreement with stable: observed 0.3" in history[-1].reason
    assert all(e.phase_to != Phase.CANARY.value for e in history)
    assert routes(w) == ("1", None, 0, False)
    assert w.target.retired == ["2"] and w.registry.aliases["champion"] == "1"


def test_a_canary_failing_its_slo_rolls_back_at_once_mid_window(tmp_path: Path) -> None:
    w = world(tmp_path)
    r = start(w)
    c = w.controller()
    while r.phase is not Phase.CANARY:
        r = w.ticks(r, 1, c=c)
    w.metrics.values['version="2",role="primary"&code="5xx"'] = 0.2
    r = w.ticks(r, 2, c=c)  # the set-weight step, then the first measurement of its analysis
    assert r.phase is Phase.ROLLED_BACK
    assert "candidate error rate: observed 0.2" in w.ledger.history(release_id=r.id)[-1].reason
    assert routes(w) == ("1", None, 0, False)


def test_no_data_never_promotes_and_query_errors_roll_back_at_the_limit(tmp_path: Path) -> None:
    w = world(tmp_path)
    w.metrics.values = {}
    r = w.ticks(start(w), 30)
    assert r.phase is Phase.SHADOW  # waiting for samples, for as long as it takes
    w.metrics.down = True
    r = w.ticks(r, 2)
    assert r.phase is Phase.SHADOW and r.consecutive_errors == 2
    w.metrics.down = False
    r = w.ticks(r, 1)
    assert r.consecutive_errors == 0  # a measurement in between resets the count
    w.metrics.down = True
    r = w.ticks(r, 3)
    assert r.phase is Phase.ROLLED_BACK
    assert "3 analyses in a row could not measure" in w.ledger.history(release_id=r.id)[-1].reason


def test_a_candidate_that_crashes_at_start_never_gets_traffic_and_fails(tmp_path: Path) -> None:
    w = world(tmp_path, target=FakeTarget(crash={"2"}))
    r = w.ticks(start(w), 3)
    assert r.phase is Phase.FAILED
    assert "ImportError" in w.ledger.history(release_id=r.id)[-1].reason
    assert routes(w) == ("1", None, 0, False)


def test_a_candidate_that_never_gets_ready_fails_after_the_start_timeout(tmp_path: Path) -> None:
    w = world(tmp_path, target=FakeTarget(start_ticks=10_000))
    r = w.ticks(start(w), 30)
    assert r.phase is Phase.FAILED
    assert "rollout.start_timeout" in w.ledger.history(release_id=r.id)[-1].reason


def test_a_restarted_controller_resumes_from_the_ledger(tmp_path: Path) -> None:
    w = world(tmp_path)
    r = start(w)
    while not (r.phase is Phase.CANARY and r.step_index >= 2):
        r = w.ticks(r, 1)
    before, weight_before = r, routes(w)[2]
    fresh = w.controller()  # a new process: nothing in memory
    r = fresh.tick(w.ledger.get(r.id))
    assert progress(r) >= progress(before)  # it picks up where the ledger says, never earlier
    assert routes(w)[2] >= weight_before
    assert w.target.deploys == ["1", "2"]  # nothing started twice
    r = w.ticks(r, 20, c=fresh)
    assert r.phase is Phase.AWAITING_APPROVAL


def test_on_call_rollback_needs_no_controller_and_is_idempotent(tmp_path: Path) -> None:
    w = world(tmp_path)
    r = _awaiting(w)
    r = people.approve(w.ctx, str(r.id), "alice")
    w.target.retire("1")  # the grace period is over: the previous stable was stopped
    r2, changed = operations.rollback(w.ctx, "oncall", "alerts firing")
    assert changed and r2.phase is Phase.ROLLED_BACK
    assert routes(w) == ("2", None, 0, False)  # recorded: nothing has moved yet
    assert w.converge().ok
    assert routes(w) == ("1", None, 0, False)  # started again, then routed
    assert w.registry.aliases["champion"] == "1"
    assert w.registry.outcome("2") == "rolled-back"
    again, changed = operations.rollback(w.ctx, "oncall", "")
    assert not changed and again.id == r2.id and w.converge().ok and routes(w) == ("1", None, 0, False)
    assert [e.action for e in w.ledger.history(release_id=r.id)].count("rollback") == 1


def test_an_abort_during_a_tick_wins_over_the_controllers_routes(tmp_path: Path) -> None:
    w = world(tmp_path)
    r = start(w)
    while r.phase is not Phase.SHADOW:
        r = w.ticks(r, 1)
    stale = r  # what a controller read just before on-call acted
    operations.abort(w.ctx, str(r.id), "oncall", "wrong model")
    w.controller().tick(stale)
    assert w.ledger.get(r.id).phase is Phase.ABORTED
    assert routes(w) == ("1", None, 0, False)


def test_the_first_version_of_a_model_is_promoted_without_steps(tmp_path: Path) -> None:
    w = world(tmp_path)
    w.target.set_routes(Routes())
    w.target.retire("1")
    w.registry.aliases.clear()
    w.registry.aliases["champion"] = "2"
    r = operations.create(w.ctx, "2", "dana")
    assert r.stable_version is None and len(r.plan) == 0
    r = w.ticks(r, 4)
    assert r.phase is Phase.PROMOTED and routes(w) == ("2", None, 0, False)


def test_only_one_live_release_per_model(tmp_path: Path) -> None:
    w = world(tmp_path)
    first = start(w)
    with pytest.raises(Refused, match=rf"release {first.name} is still pending: one release of a model"):
        operations.create(w.ctx, "3", "dana")


def test_of_two_people_deciding_at_once_the_slower_is_refused_and_nothing_is_undone(tmp_path: Path) -> None:
    w = world(tmp_path)
    r = _awaiting(w)
    stale = w.ledger.get(r.id)
    people.approve(w.ctx, str(r.id), "alice")
    # bob's command read the release while it still awaited approval; his reject lands second.
    late = people.signed(w.ctx, stale, "bob", "reject", reason="too risky")
    with pytest.raises(
        Refused, match=r"reject refused: .* changed meanwhile -- alice approved it, it is now promoted"
    ):
        decisions.reject(w.ctx, late)
    assert w.ledger.get(r.id).phase is Phase.PROMOTED and routes(w) == ("2", None, 0, False)


def test_healthy_metrics_fixture_is_what_the_analysis_passes_on(tmp_path: Path) -> None:
    # Guards the fake: with the candidate 5x slower than stable the same scenario must fail.
    w = world(tmp_path)
    w.metrics.values['version="2",role="primary"&histogram_quantile'] = 40.0
    w.metrics.values = {'le="0.015"': 0.0, **w.metrics.values}  # none of its requests within 15 ms
    r = w.ticks(start(w), 40)
    assert r.phase is Phase.ROLLED_BACK
    assert "p95 latency vs stable: observed 5.0" in w.ledger.history(release_id=r.id)[-1].reason


def test_a_target_that_refuses_is_recorded_and_rolls_back_after_the_error_limit(tmp_path: Path) -> None:
    from launchbay.errors import EnvironmentProblem

    w = world(tmp_path)
    r = start(w)
    c = w.controller()
    while r.phase is not Phase.SHADOW:
        r = w.ticks(r, 1, c=c)
    real = w.target.set_routes
    calls = {"n": 0}

    def refuse(routes: Routes, generation: int | None = None) -> None:
        calls["n"] += 1
        if routes.canary is not None:  # the API server refuses the canary route (RBAC 403)
            raise EnvironmentProblem("Kubernetes refused PATCH httproutes (403 Forbidden)")
        real(routes, generation)

    w.target.set_routes = refuse  # type: ignore[method-assign]
    w.target.current = Routes(stable=w.target.backend("1"))  # the route must be re-applied
    r = w.ticks(r, 3, c=c)
    errors = [e for e in w.ledger.history(release_id=r.id) if e.action == "target-error"]
    assert len(errors) >= 3 and "403 Forbidden" in errors[0].reason
    assert r.phase is Phase.ROLLED_BACK
    assert routes(w) == ("1", None, 0, False)  # stable-only routes were allowed: rollback acted


def test_a_users_own_business_metric_rolls_a_candidate_back_and_says_which(tmp_path: Path) -> None:
    share = {
        "query": 'avg_over_time(positive_share{version="{version}"}[{window}])',
        "compare": "relative",
        "max": 1.5,
    }
    w = world(tmp_path, config(metrics={"positive_share": share}))
    w.metrics.values = {
        'positive_share{version="2"}': 0.3,
        'positive_share{version="1"}': 0.3,
        **w.metrics.values,
    }
    r = start(w)
    c = w.controller()
    while r.phase is not Phase.CANARY:
        r = w.ticks(r, 1, c=c)
    r = w.ticks(r, 2, c=c)
    assert r.phase is Phase.CANARY  # as good as stable on the business metric: it goes on
    asked = [q for q in w.metrics.queries if "positive_share" in q]
    assert 'avg_over_time(positive_share{version="2"}[4s])' in asked  # PromQL's own braces kept
    w.metrics.values['positive_share{version="2"}'] = 0.9  # three times stable's share of positives
    r = w.ticks(r, 1, c=c)
    assert r.phase is Phase.ROLLED_BACK
    reason = w.ledger.history(release_id=r.id)[-1].reason
    assert "metric positive_share vs stable: observed 3.0, expected <= 1.5x stable" in reason


def test_an_analysis_step_measures_its_own_window_and_only_its_own_metrics(tmp_path: Path) -> None:
    share = {"query": 'positive_share{version="{version}"}[{window}]', "compare": "relative", "max": 1.5}
    steps = [
        {"set_weight": 10},
        {"analysis": {"duration": "2s", "window": "30s", "metrics": []}},
        {"set_weight": 50},
        {"analysis": {"duration": "2s"}},
    ]
    w = world(tmp_path, config(shadow=None, steps=steps, metrics={"positive_share": share}))
    shares = {'positive_share{version="2"}': 0.9, 'positive_share{version="1"}': 0.3}
    w.metrics.values = {**shares, **w.metrics.values}
    c = w.controller()
    r = _canary(w, c)
    assert r.step is not None and r.step.describe() == "analysis for 2s over 30s windows, metrics: none"
    w.clock.now += 60  # a release old enough to have 30 s of its own traffic
    w.metrics.queries.clear()
    r = w.ticks(r, 1, c=c)
    assert r.phase is Phase.CANARY  # the business metric is not this step's: not asked, not judged
    assert w.metrics.queries and all("[30s]" in q for q in w.metrics.queries if "[" in q)
    assert not any("positive_share" in q for q in w.metrics.queries)
    while r.phase is Phase.CANARY and r.step_index < 3:
        r = w.ticks(r, 1, c=c)
    r = w.ticks(r, 1, c=c)  # the last step judges every metric over the rollout's window
    assert r.phase is Phase.ROLLED_BACK
    assert "metric positive_share vs stable" in w.ledger.history(release_id=r.id)[-1].reason


def test_a_young_release_is_measured_over_its_own_life_only(tmp_path: Path) -> None:
    # The gateway's series are per version: a version released again moments after its rollback
    # must not be judged on the tail of its previous release's traffic.
    w = world(tmp_path, config(shadow=None, analysis_window="60s"))
    c = w.controller()
    r = _canary(w, c)
    age = w.clock.now - r.created_at
    w.metrics.queries.clear()
    r = w.ticks(r, 1, c=c)
    windows = {q.rsplit("[", 1)[1].split("]")[0] for q in w.metrics.queries if "[" in q}
    assert windows == {f"{max(round(age), 2)}s"} and age < 60, (windows, age)  # not the configured 60 s


def _canary(w: World, c: object) -> Release:
    r = start(w)
    while r.phase is not Phase.CANARY or not isinstance(r.step, Analysis | Pause):
        r = w.ticks(r, 1, c=c)  # type: ignore[arg-type]
    return r


def test_explicit_steps_with_a_failure_limit_tolerate_that_many_fails(tmp_path: Path) -> None:
    steps = [{"set_weight": 10}, {"analysis": {"duration": "10s", "failure_limit": 1}}, {"approval": True}]
    w = world(tmp_path, config(shadow=None, steps=steps))
    c = w.controller()
    r = _canary(w, c)
    assert [s.kind for s in r.plan.steps] == ["set-weight", "analysis", "approval"]
    w.metrics.values['version="2",role="primary"&code="5xx"'] = 0.5
    r = w.ticks(r, 1, c=c)
    assert r.phase is Phase.CANARY  # the first FAIL is tolerated (and on record) ...
    assert w.ledger.history(release_id=r.id)[-1].evidence["verdict"] == "FAIL"
    r = w.ticks(r, 1, c=w.controller())  # a restarted controller (its memory lost) ...
    assert r.phase is Phase.ROLLED_BACK  # ... knows from the ledger: the second is not tolerated
    assert "analysis failed 2 times (failure_limit 1)" in w.ledger.history(release_id=r.id)[-1].reason


def test_an_inconclusive_limit_rolls_back_a_step_that_never_gets_its_evidence(tmp_path: Path) -> None:
    steps = [{"set_weight": 10}, {"analysis": {"duration": "10s", "inconclusive_limit": 3}}]
    w = world(tmp_path, config(shadow=None, steps=steps))
    c = w.controller()
    r = _canary(w, c)
    w.metrics.values['version="2",role="primary"'] = 3.0  # far below min_samples: INCONCLUSIVE
    r = w.ticks(r, 2, c=c)
    assert r.phase is Phase.CANARY
    r = w.ticks(r, 1, c=c)
    assert r.phase is Phase.ROLLED_BACK
    assert (
        "3 inconclusive analyses in a row (inconclusive_limit 3)"
        in w.ledger.history(release_id=r.id)[-1].reason
    )


def test_a_pause_holds_the_weight_for_its_duration_then_goes_on_without_a_pass(tmp_path: Path) -> None:
    steps = [{"set_weight": 30}, {"pause": "3s"}, {"set_weight": 60}, {"analysis": {"duration": "2s"}}]
    w = world(tmp_path, config(shadow=None, steps=steps))
    c = w.controller()
    r = _canary(w, c)
    assert isinstance(r.step, Pause) and routes(w) == ("1", "2", 30, False)
    w.metrics.values['version="2",role="primary"'] = 3.0  # inconclusive: a pause does not care
    r = w.ticks(r, 4, c=c)
    assert r.phase is Phase.CANARY and r.step_index >= 2 and routes(w)[2] == 60


def test_a_p95_ratio_over_the_limit_on_few_requests_is_counted_before_it_blames(tmp_path: Path) -> None:
    w = world(tmp_path)
    c = w.controller()
    r = _canary(w, c)
    w.metrics.values['version="2",role="primary"&histogram_quantile'] = 20.0
    w.metrics.values = {'version="2",role="primary",le="0.015"': 198.0, **w.metrics.values}
    r = w.ticks(r, 1, c=c)  # 20 ms vs stable's 8 ms: 2.5x, but 2 of 200 requests over 15 ms
    assert r.phase is Phase.CANARY
    asked = [q for q in w.metrics.queries if 'le="0.015"' in q]
    assert asked == [
        'sum(increase(launchbay_gateway_request_duration_seconds_bucket{version="2",role="primary",le="0.015"}[4s]))'
    ]
    w.metrics.values['version="2",role="primary",le="0.015"'] = 100.0  # half of them: really slower
    r = w.ticks(r, 1, c=c)
    assert r.phase is Phase.ROLLED_BACK
    assert "p95 latency vs stable" in w.ledger.history(release_id=r.id)[-1].reason


def test_a_p95_over_the_absolute_slo_on_few_requests_is_counted_before_it_blames(tmp_path: Path) -> None:
    w = world(tmp_path)
    c = w.controller()
    r = _canary(w, c)
    slo = w.ctx.cfg.rollout.slo.p95_latency_ms
    le = repr(next(b for b in LATENCY_BUCKETS if b >= slo / 1000))
    w.metrics.values['version="1",role="primary"&histogram_quantile'] = slo * 0.9  # stable within
    w.metrics.values['version="2",role="primary"&histogram_quantile'] = slo * 1.2  # ratio within
    w.metrics.values = {f'version="2",role="primary",le="{le}"': 196.0, **w.metrics.values}
    r = w.ticks(r, 1, c=c)  # over the SLO on the point estimate, but 4 of 200 requests slower
    assert r.phase is Phase.CANARY
    assert any(f'le="{le}"' in q for q in w.metrics.queries)
    w.metrics.values[f'version="2",role="primary",le="{le}"'] = 150.0  # a quarter: really over
    r = w.ticks(r, 1, c=c)
    assert r.phase is Phase.ROLLED_BACK
    assert "candidate p95 latency" in w.ledger.history(release_id=r.id)[-1].reason


@pytest.mark.parametrize("on_deadline", ["hold", "abort", "rollback"])
def test_a_step_that_cannot_decide_says_what_it_waits_for_and_acts_at_its_deadline(
    tmp_path: Path, on_deadline: str
) -> None:
    # The tester's case: a 5% canary at 30 req/s in a 10 s window holds ~15 requests of 50.
    steps = [{"set_weight": 5}, {"analysis": {"duration": "10s"}}]
    cfg = config(shadow=None, steps=steps, analysis_window="10s", min_samples=50, expected_rps=30,
                 on_deadline=on_deadline)  # fmt: skip
    w = world(tmp_path, cfg)
    c = w.controller()
    r = _canary(w, c)
    w.metrics.values['version="2",role="primary"'] = 15.0
    deadline = c.deadline(r)
    assert deadline == 10 + max(120, 3 * 50 / (30 * 0.05))  # 3x the 33 s that 50 requests take at 5%
    r = w.ticks(r, 15, c=c)
    said = c.last_result[r.id].waiting()
    assert "candidate requests in window: 15 of >= 50" in said
    assert "a 10s window holds ~15: it cannot reach 50 -- needs a window of 33s" in said
    assert not any(e.action == "progress-deadline" for e in w.ledger.history(release_id=r.id))
    w.clock.now += deadline
    r = w.ticks(r, 3, c=c)
    last = [e for e in w.ledger.history(release_id=r.id) if e.action != "measurements"][-1]
    assert "has not decided in" in last.reason and "cannot reach 50" in last.reason
    if on_deadline == "hold":
        assert r.phase is Phase.CANARY and last.action == "progress-deadline"
        stalled = [e for e in w.ledger.history(release_id=r.id) if e.action == "progress-deadline"]
        assert len(stalled) == 1 and f"launchbay abort {r.id}" in stalled[0].reason  # said once
        again = w.controller()  # a restarted controller does not say it again
        w.ticks(r, 2, c=again)
        assert len([e for e in w.ledger.history(release_id=r.id) if e.action == "progress-deadline"]) == 1
    else:
        assert r.phase is (Phase.ABORTED if on_deadline == "abort" else Phase.ROLLED_BACK)


def test_a_window_that_can_hold_enough_gives_an_eta() -> None:
    from launchbay.rollout.engine.analysis import waiting_for

    assert waiting_for(20, 50, 10, 30) == "~15s to go at 2/s"  # young release: window still growing
    assert waiting_for(20, 50, 30, 30).startswith("at 0.67/s a 30s window holds ~20: it cannot reach 50")
    assert waiting_for(0, 50, 10, 10) == "none in the last 10s: waiting for traffic"
