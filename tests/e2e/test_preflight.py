"""Replay before shadow and a baseline beside the canary, against real processes.

The gateway keeps a sample of users' requests; before a candidate is mirrored any traffic, the
controller replays them to it alone, at the peak the gateway recorded and then in a burst. A
candidate that cannot take the burst fails there -- no user request, mirrored or real, ever
reaches it -- and one that can goes on to shadow. In its canary steps a fresh server of stable
(the baseline) takes the candidate's share, the analysis compares the two, and the baseline is
stopped when the release ends."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from projects import FAST_ROLLOUT
from rollout_dsl import MODEL, Bay, Common, Given, open_bay

from launchbay import procs
from launchbay.rollout.engine.phases import Phase
from launchbay.rollout.engine.release import Release

pytestmark = pytest.mark.slow

ROLLOUT = {
    **FAST_ROLLOUT,
    "approval": {"required": False},
    # One answer at a time, 25 ms each: ~40 a second. Users send 12 a second; the burst, 5x the
    # busiest second the gateway saw, is well past what the fragile candidate can answer.
    "preflight": {"replay": {"capture": 300, "burst": 5, "duration": "6s"}},
    "baseline": True,
}


@pytest.fixture(scope="module")
def bay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bay]:
    with open_bay(tmp_path_factory.mktemp("preflight"), {"rollout": ROLLOUT}, ["fragile", "good"]) as b:
        yield b


@pytest.fixture
def given(bay: Bay) -> Iterator[Given]:
    common = Common(bay)
    try:
        yield Given(common)
    finally:
        common.close()


def _replay(bay: Bay, release_id: int) -> dict:
    events = bay.ledger.history(release_id=release_id)
    return next(e for e in events if e.action.startswith("replay")).evidence["replay"]


def test_a_candidate_that_cannot_take_the_replayed_burst_fails_before_any_user_request_reaches_it(
    given: Given, bay: Bay
) -> None:
    then = (
        given.candidate("fragile").client_traffic(12)
        .when().waited(5)  # the gateway samples users' requests and records their peak
        .released()
        .then().exit_code(1).phase(Phase.FAILED)
        .said("replay before shadow")
        .decided_by("launchbay-controller", "replay-failed")
        .never_entered(Phase.SHADOW)
        .no_client_was_answered_by_the_candidate()
        .routes(stable="1", canary=None)
    )
    replayed = _replay(bay, then.c.release.id)
    burst = replayed["legs"][-1]
    assert replayed["verdict"] == "FAIL" and burst["name"] == "burst"
    assert burst["rate"] >= 5 * replayed["peak_rps"] * 0.99 and burst["sent"] > 0
    assert 0 < replayed["replayed"] <= 300  # the sample is bounded
    # Nothing mirrored to it either: the gateway never sent it a request of any role.
    fragile = bay.versions["fragile"]
    metrics = httpx.get(bay.gateway + "/metrics", timeout=5).text.splitlines()
    mine = f'version="{fragile}"'
    sent = [x for x in metrics if x.startswith("launchbay_gateway_requests_total") and mine in x]
    assert sum(float(x.rsplit(" ", 1)[1]) for x in sent) == 0, sent


def _baseline_serves(bay: Bay, release: Release) -> bool:
    """During the canary: a baseline server of stable runs and the gateway routes to it."""
    deadline = time.monotonic() + 20
    while (bay.routes().get("baseline") or {}).get("version") != "1":
        assert time.monotonic() < deadline, f"no baseline in the routes: {bay.routes()}"
        time.sleep(0.2)
    record = procs.ProcessRecord.read(bay.home / "local" / MODEL / "servers" / "baseline-v1.json")
    assert record is not None and record.running and record.url == bay.routes()["baseline"]["url"]
    assert record.url != bay.routes()["stable"]["url"]  # a server of its own, started fresh
    return True


def test_a_candidate_that_takes_the_burst_goes_on_to_shadow_and_canary_against_a_baseline(
    given: Given, bay: Bay
) -> None:
    then = (
        given.candidate("good").client_traffic(12)
        .when().waited(3)
        .released_in_background()
        .phase_reached(Phase.CANARY)
        .then().holds(_baseline_serves, "a baseline server of stable takes the candidate's share")
        .when().the_release_command_ends()
        .then().exit_code(0).phase(Phase.PROMOTED)
        .went_through(Phase.SHADOW)
        .routes(stable=bay.versions["good"])
    )
    events = bay.ledger.history(release_id=then.c.release.id)
    analyses = [e.evidence for e in events if e.action == "analysis"]
    canary = [a for a in analyses if a.get("compared_with") == "baseline"]
    assert canary, analyses  # the canary steps were judged against the baseline
    metrics = httpx.get(bay.gateway + "/metrics", timeout=5).text.splitlines()
    answered = [x for x in metrics if x.startswith("launchbay_gateway_requests_total") and "baseline" in x]
    assert sum(float(x.rsplit(" ", 1)[1]) for x in answered) > 0
    # The release ended: the baseline server is stopped and gone from the routes.
    deadline = time.monotonic() + 20
    while (bay.home / "local" / MODEL / "servers" / "baseline-v1.json").exists():
        assert time.monotonic() < deadline, "the baseline server was not stopped"
        time.sleep(0.2)
    assert "baseline" not in bay.routes()
    replayed = _replay(bay, then.c.release.id)
    assert replayed["verdict"] == "PASS", replayed
    captured = json.loads((bay.home / "local" / MODEL / "capture.json").read_text())
    assert 0 < len(captured["bodies"]) <= 300 < captured["seen"] and captured["peak_rps"] >= 5
