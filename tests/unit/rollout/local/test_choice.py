"""Pins and sticky users: the chooser's rules, then the gateway process in front of real backends."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from gateway_process import FakeModel, GatewayProcess

from launchbay.rollout.local.choice import PINNED, Chooser, Routing, bucket, cookie_value, parse_cookie
from launchbay.rollout.targets.base import Backend, Routes

ONE, TWO, THREE = (Backend(v, f"http://127.0.0.1:{9000 + int(v)}") for v in ("1", "2", "3"))


def test_a_pin_names_a_routed_version_by_role_or_number_and_anything_else_is_refused() -> None:
    chooser = Chooser(Routing())
    shadow = Routes(stable=ONE, canary=TWO, mirror=True)
    for pin in ("candidate", "Canary", "2", "v2"):
        assert chooser.choose(shadow, {"X-Launchbay-Pin": pin}, {}, 0.0).backend == TWO
    assert chooser.choose(shadow, {"X-Launchbay-Pin": "stable"}, {}, 0.0) == Chooser._pinned(shadow, "1")
    refused = chooser.choose(Routes(stable=ONE), {"X-Launchbay-Pin": "candidate"}, {}, 0.0)
    assert refused.backend is None and refused.role == PINNED and "no candidate" in (refused.refusal or "")
    assert "not deployed (stable 1, candidate 2)" in (
        chooser.choose(shadow, {"X-Launchbay-Pin": "7"}, {}, 0).refusal or ""
    )
    # Without pinning configured the header is just a header.
    assert Chooser(Routing(pin_header=None)).choose(shadow, {"X-Launchbay-Pin": "2"}, {}, 0.0).backend == ONE


def test_a_header_keyed_user_keeps_the_first_version_through_weight_changes_until_the_release_ends() -> None:
    chooser = Chooser(Routing(sticky="header", sticky_header="X-User-Id"))
    users = [f"user-{i}" for i in range(400)]

    def versions(routes: Routes) -> dict[str, str]:
        out = {}
        for u in users:
            backend = chooser.choose(routes, {"X-User-Id": u}, {}, 99.9).backend
            assert backend is not None
            out[u] = backend.version
        return out

    first = versions(Routes(stable=ONE, canary=TWO, canary_weight=10))
    assert 0.05 < list(first.values()).count("2") / len(users) < 0.15
    assert versions(Routes(stable=ONE, canary=TWO, canary_weight=50)) == first
    assert versions(Routes(stable=ONE, canary=TWO, canary_weight=5)) == first
    # Promoted: everyone is on 2; the next release draws afresh at its own weight.
    assert set(versions(Routes(stable=TWO)).values()) == {"2"}
    nxt = versions(Routes(stable=TWO, canary=THREE, canary_weight=50))
    assert 0.4 < list(nxt.values()).count("3") / len(users) < 0.6
    # Forgotten (a full table, a restarted gateway): a user who was on the candidate is drawn onto it again.
    small = Chooser(Routing(sticky="header", sticky_header="X-User-Id"), capacity=1)
    on_three = [u for u, v in nxt.items() if v == "3"]
    assert all(bucket(u) < 50 for u in on_three)
    again = {
        u: small.choose(Routes(stable=TWO, canary=THREE, canary_weight=60), {"X-User-Id": u}, {}, 99).backend
        for u in on_three
    }
    assert {b.version for b in again.values() if b is not None} == {"3"}


def test_the_sticky_cookie_is_the_version_and_the_release_it_was_given_in() -> None:
    chooser = Chooser(Routing(sticky="cookie"))
    routes = Routes(stable=ONE, canary=TWO, canary_weight=20)
    drawn = chooser.choose(routes, {}, {}, 10.0)
    assert drawn.backend == TWO and drawn.cookie == "v2.c2" == cookie_value("2", "2")
    assert parse_cookie("v1.c2") == ("1", "2") and parse_cookie("nonsense") is None
    kept = chooser.choose(
        Routes(stable=ONE, canary=TWO, canary_weight=60), {}, {"launchbay-version": "v1.c2"}, 0.0
    )
    assert kept.backend == ONE and kept.cookie is None
    # Another release's cookie, or one naming a version that no longer serves: drawn again.
    other = chooser.choose(
        Routes(stable=TWO, canary=THREE, canary_weight=20), {}, {"launchbay-version": "v1.c2"}, 50
    )
    assert other.backend == TWO and other.cookie == "v2.c3"
    # Shadow (no share of traffic): nothing to stick to, no cookie.
    assert chooser.choose(Routes(stable=ONE, canary=TWO, mirror=True), {}, {}, 0.0).cookie is None


def _gateway(tmp_path: Path, routing: Routing) -> GatewayProcess:
    return GatewayProcess(tmp_path / "gw", None, "m", 0, 1000, "--routing", routing.to_json())


def test_a_pinned_tester_always_gets_the_candidate_and_is_counted_apart(tmp_path: Path, models: dict) -> None:
    gateway = _gateway(tmp_path, Routing())
    try:
        models["1"], models["2"] = FakeModel("1"), FakeModel("2", prediction=1)
        gateway.split(models["1"], models["2"], mirror=True)  # shadow: users get none of 2
        with httpx.Client() as client:
            pinned = [gateway.predict(client, headers={"X-Launchbay-Pin": "candidate"}) for _ in range(30)]
            users = [gateway.predict(client, json={"row": {"x": i}}) for i in range(20)]
            wrong = gateway.predict(client, headers={"X-Launchbay-Pin": "9"})
        assert {r.headers["X-Launchbay-Version"] for r in pinned} == {"2"}
        assert {r.headers["X-Launchbay-Version"] for r in users} == {"1"}
        assert wrong.status_code == 409 and "version '9' is not deployed" in wrong.json()["error"]
        assert gateway.metric("launchbay_gateway_requests_total", version="2", role="pinned") == 30
        assert gateway.metric("launchbay_gateway_requests_total", version="2", role="primary") == 0
        deadline = time.monotonic() + 10
        while gateway.metric("launchbay_shadow_compared_rows_total") < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        # Only users' requests were mirrored and compared; the testers' were not.
        assert gateway.metric("launchbay_shadow_compared_rows_total", stable="1", candidate="2") == 20
        assert gateway.metric("launchbay_gateway_requests_total", version="2", role="shadow") == 20
        assert gateway.metric("launchbay_gateway_rejected_requests_total", reason="pin") == 1
    finally:
        gateway.stop()


def test_sticky_users_keep_their_version_through_weight_changes_at_the_gateway(
    tmp_path: Path, models: dict
) -> None:
    gateway = _gateway(tmp_path, Routing(sticky="cookie"))
    try:
        models["1"], models["2"] = FakeModel("1"), FakeModel("2", prediction=1)
        gateway.split(models["1"], models["2"], canary_weight=20)
        clients = [httpx.Client() for _ in range(60)]
        first = [gateway.predict(c).headers["X-Launchbay-Version"] for c in clients]
        assert 0 < first.count("2") < 30
        gateway.split(models["1"], models["2"], canary_weight=50)
        for _ in range(3):
            assert [gateway.predict(c).headers["X-Launchbay-Version"] for c in clients] == first
        gateway.routes(
            stable=gateway.register(models["2"])
        )  # promoted: the candidate's users and stable's all reach 2
        assert {gateway.predict(c).headers["X-Launchbay-Version"] for c in clients} == {"2"}
        for c in clients:
            c.close()
    finally:
        gateway.stop()


def test_a_baseline_takes_the_candidates_share_and_is_counted_as_its_own_role() -> None:
    base = Backend("1", "http://127.0.0.1:9101")
    routes = Routes(stable=ONE, canary=TWO, canary_weight=20, baseline=base)
    chooser = Chooser(Routing())
    drawn = [chooser.choose(routes, {}, {}, d / 10) for d in range(1000)]
    shares = {role: sum(1 for c in drawn if (c.backend, c.role) == key) / 1000
              for role, key in {"canary": (TWO, "primary"), "baseline": (base, "baseline"),
                                "stable": (ONE, "primary")}.items()}  # fmt: skip
    assert shares == {"canary": 0.2, "baseline": 0.2, "stable": 0.6}
    with pytest.raises(ValueError, match=r"weight 1\.\.50"):
        Routes(stable=ONE, canary=TWO, canary_weight=60, baseline=base)
    assert Routes.from_dict(routes.to_dict()) == routes
    assert "baseline" not in Routes(stable=ONE).to_dict()


def test_the_plan_carries_the_baseline_through_the_canary_steps_and_the_config_bounds_it() -> None:
    from rollout_fakes import config

    from launchbay.rollout.engine.plan import plan

    steps = plan(config(baseline=True, steps=[10, 40]).rollout, None, "1")
    splits = [steps.traffic(i) for i in range(len(steps))]
    weighted = [(s.canary_weight, s.baseline) for s in splits if s.canary_weight]
    assert weighted == [(10, True)] * 2 + [(40, True)] * 3  # set-weight, analysis, ..., approval
    assert not splits[0].baseline and splits[0].mirror  # shadow: no baseline
    with pytest.raises(ValueError, match="weights go up to 50"):
        config(baseline=True, steps=[25, 75])
    with pytest.raises(ValueError, match="local target only"):
        config(baseline=True, target="kubernetes")


def test_sticky_users_are_never_moved_onto_the_baseline_once_kept_on_a_version() -> None:
    base = Backend("1", "http://127.0.0.1:9101")
    routes = Routes(stable=ONE, canary=TWO, canary_weight=20, baseline=base)
    by_cookie = Chooser(Routing(sticky="cookie"))
    for draw in (5.0, 25.0, 70.0):  # a returning user's cookie wins over any draw
        kept = by_cookie.choose(routes, {}, {"launchbay-version": "v2.c2"}, draw)
        assert kept.backend == TWO and kept.role == "primary"
    drawn = by_cookie.choose(routes, {}, {}, 25.0)  # a new user drawn into the baseline's share
    assert drawn.backend == base and drawn.role == "baseline" and drawn.cookie == "v1.c2"
    by_header = Chooser(Routing(sticky="header", sticky_header="X-User-Id"))
    users = [f"u{i}" for i in range(200)]
    first = {u: by_header.choose(routes, {"X-User-Id": u}, {}, 25.0).backend for u in users}
    assert base not in first.values()  # identified users stay on one version
    again = {u: by_header.choose(routes, {"X-User-Id": u}, {}, 25.0).backend for u in users}
    assert again == first
    assert by_header.choose(routes, {}, {}, 25.0).backend == base  # anonymous: drawn like the rest
