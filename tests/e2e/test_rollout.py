"""Progressive delivery against real processes: BentoML servers, the gateway, Prometheus, the CLI.

One module fixture trains the stable version (served by `launchbay run`, the first version of the
model) and registers candidates with production-only faults (faults.py). Each test then rolls a
candidate out while a client sends steady traffic through the gateway and records which version
answered, written Given / When / Then (rollout_dsl.py). Tests leave version 1 serving all traffic
with no live release, as they found it; every process is stopped by its PID at the end
(`launchbay down`, then the PID files).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import people
import pytest
from fraud_model import FEATURES
from projects import FAST_ROLLOUT
from rollout_dsl import MODEL, Bay, Common, Given, open_bay
from webhooks import Receiver

from launchbay.rollout.engine.phases import Phase
from launchbay.rollout.engine.release import Release
from launchbay.rollout.local.clients import sample_rows

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
ROLLOUT = {
    **FAST_ROLLOUT,
    # dana, the author of every release here, is an approver too: four eyes must still stop her.
    "approval": {"required": True, "approvers": people.approvers("alice", "bob", "dana")},
    # Users who send their id keep the version first given to them; testers pin with X-Launchbay-Pin.
    "routing": {"sticky": "header", "sticky_header": "X-User-Id"},
}
USERS = [f"user-{i}" for i in range(40)]


def _answered_by(bay: Bay, headers: list[dict[str, str]]) -> list[str]:
    """Which version answered each of a series of requests (one real row each) through the gateway."""
    row = sample_rows(str(bay.root / "data" / "transactions.parquet"), FEATURES, n=1)[0]
    with httpx.Client(timeout=10) as client:
        answers = [client.post(bay.gateway + "/predict", json={"row": row}, headers=h) for h in headers]
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200]
    return [a.headers["X-Launchbay-Version"] for a in answers]


def _pinned_count(bay: Bay, version: str) -> float:
    text = httpx.get(bay.gateway + "/metrics", timeout=5).text
    wanted = (f'version="{version}"', 'role="pinned"')
    lines = [x for x in text.splitlines() if x.startswith("launchbay_gateway_requests_total")]
    return sum(float(x.rsplit(" ", 1)[1]) for x in lines if all(w in x for w in wanted))


class Testers:
    """A tester pinned to the candidate and users keyed by id, asked at two weights."""

    __test__ = False  # a helper, not a test class

    def __init__(self) -> None:
        self.first: list[str] = []

    def pinned_get_the_candidate(self, bay: Bay, release: Release) -> bool:
        deadline = time.monotonic() + 10  # the ledger says shadow; the reconciler routes it next
        while (bay.routes().get("canary") or {}).get("version") != release.version:
            assert time.monotonic() < deadline, f"no route to the candidate: {bay.routes()}"
            time.sleep(0.1)
        before = _pinned_count(bay, release.version)
        got = _answered_by(bay, [{"X-Launchbay-Pin": "candidate"}] * 20)
        # Counted apart: the analysis reads role="primary" only.
        counted = _pinned_count(bay, release.version) - before
        assert set(got) == {release.version} and counted == 20, (got, counted)
        return True

    def users_drawn(self, bay: Bay, release: Release) -> bool:
        # The ledger says canary a moment before the reconciler routes the first weight; stickiness
        # starts with that weight (in shadow every user is answered by stable and nobody is kept).
        deadline = time.monotonic() + 10
        while not bay.routes().get("canary_weight"):
            assert time.monotonic() < deadline, f"no weight on the candidate: {bay.routes()}"
            time.sleep(0.1)
        self.first = _answered_by(bay, [{"X-User-Id": u} for u in USERS])
        # 10 of these 40 ids fall under 25% by their hash: both versions must be among the answers.
        return set(self.first) == {"1", release.version}

    def users_kept(self, bay: Bay, release: Release) -> bool:
        return _answered_by(bay, [{"X-User-Id": u} for u in USERS]) == self.first


KINDS = ["good", "errors", "slow", "crash", "disagree"]
"""The candidates registered once for the module: the example model and faults.py's faults."""


@pytest.fixture(scope="module")
def bay(tmp_path_factory: pytest.TempPathFactory, webhook: Receiver) -> Iterator[Bay]:
    notifications = {"webhooks": [{"name": "release-managers", "url_env": "RM_WEBHOOK"}]}
    overrides = {"rollout": ROLLOUT, "notifications": notifications}
    env = {"RM_WEBHOOK": f"{webhook.url}/hook"}
    with open_bay(tmp_path_factory.mktemp("rollout"), overrides, KINDS, env) as b:
        yield b


def bay_version(given: Given, kind: str) -> str:
    return given.c.bay.versions[kind]


@pytest.fixture
def given(bay: Bay) -> Iterator[Given]:
    """A scenario starting from version 1 serving alone; what it starts is stopped at its end."""
    assert not [r for r in bay.ledger.releases(MODEL) if r.phase.live or r.phase is Phase.PENDING]
    assert bay.routes()["stable"]["version"] == "1"
    common = Common(bay)
    try:
        yield Given(common)
    finally:
        common.close()
        # A scenario that failed half-way leaves its release live: end it, so that the next one
        # starts from version 1 alone and reports its own result, not this one's.
        for r in bay.ledger.releases(MODEL):
            if r.phase.live or r.phase is Phase.PENDING:
                bay.cli.run("abort", str(r.id), "--reason", "the scenario ended")


def test_a_candidate_failing_20_percent_is_rolled_back_in_shadow_before_users_see_it(given: Given) -> None:
    (
        given.candidate("errors").client_traffic(40)
        .when().released()
        .then().exit_code(1).phase(Phase.ROLLED_BACK)
        .said("candidate error rate (mirrored)")
        .never_entered(Phase.CANARY)
        .decided_by("launchbay-controller", "rollback", verdict="FAIL")
        .status_says_why("candidate error rate (mirrored)")
        .routes(stable="1", canary=None)
        .no_client_failed().no_client_was_answered_by_the_candidate()
    )


def test_a_candidate_disagreeing_with_stable_is_stopped_in_shadow(given: Given) -> None:
    (
        given.candidate("disagree").client_traffic(40)
        .when().released()
        .then().phase(Phase.ROLLED_BACK)
        .said("prediction disagreement with stable")
        .never_entered(Phase.CANARY)
        .no_client_failed().no_client_was_answered_by_the_candidate()
    )


def test_a_candidate_that_crashes_at_start_never_gets_traffic_and_is_marked_failed(given: Given) -> None:
    (
        given.candidate("crash").client_traffic(40)
        .when().released()
        .then().exit_code(1).phase(Phase.FAILED)
        .reason_says("libcuda.so.1")  # the server's own last words
        .entered(Phase.PENDING, Phase.VERIFIED, Phase.FAILED)
        .server_record_gone()
        .no_client_failed().no_client_was_answered_by_the_candidate()
    )


def test_a_candidate_5x_slower_is_rolled_back_on_the_p95_ratio(given: Given) -> None:
    (
        given.candidate("slow").client_traffic(40)
        .when().released()
        .then().phase(Phase.ROLLED_BACK)
        .reason_says("p95 latency vs stable")
        .went_through(Phase.CANARY)  # shadow does not judge latency; canary does
        .routes(stable="1", canary=None)
        .no_client_failed()
    )


def test_prometheus_down_mid_rollout_never_promotes_and_rolls_back_at_the_error_limit(given: Given) -> None:
    (
        given.candidate("good").client_traffic(40)
        .when().released_in_background().phase_reached(Phase.CANARY)
        .prometheus_hung().the_release_command_ends()
        .then().exit_code(1).phase(Phase.ROLLED_BACK)
        .reason_says("3 analyses in a row could not measure")
        .never_entered(Phase.PROMOTED)
        .no_client_failed()
    )


def test_a_killed_gateway_is_back_on_its_port_within_a_second_and_the_rollout_goes_on(given: Given) -> None:
    (
        given.candidate("good").client_traffic(40)
        .when().released_in_background().phase_reached(Phase.CANARY)
        .gateway_killed("worker").gateway_answers_again()
        .then().gateway_back_within(1.0).client_failures_only_within(1.0)
        .when().phase_reached(Phase.AWAITING_APPROVAL)
        .then().routes(stable="1", canary=bay_version(given, "good"))
        .holds(lambda b, r: any(e.action == "gateway-restarted" for e in b.events(r)), "restart on record")
        # Its supervisor killed too (the worker dies with it), with nothing but the always-on
        # controller running: it holds copies of the listening sockets and starts a supervisor on
        # them at once -- clients that connect meanwhile wait in the queue, none is refused; only
        # the requests in flight at the kill fail.
        .when().the_release_command_ends().waited(2)
        .gateway_killed("supervisor").gateway_answers_again(timeout=15)
        .then().gateway_back_within(4.0).client_failures_only_within(0.5)
        .routes(stable="1", canary=bay_version(given, "good"))
        .when().launchbay("abort", "{release}", "--reason", "test over", "--json")
        .then().exit_code(0).phase(Phase.ABORTED).routes(stable="1").json_says(phase="aborted", changed=True)
    )


def test_two_releases_at_once_create_exactly_one(given: Given, bay: Bay) -> None:
    versions = [bay.versions["good"], bay.versions["slow"]]
    started = [bay.cli.spawn("release", f"{MODEL}@{v}", "--detach") for v in versions]
    outcomes = sorted((p.wait(timeout=120), p.stdout.read() if p.stdout else "") for p in started)
    (ok, _), (refused, said) = outcomes
    assert (ok, refused) == (0, 4), outcomes
    assert "one release of a model at a time" in said
    live = [r for r in bay.ledger.releases(MODEL) if r.phase.live or r.phase is Phase.PENDING]
    assert len(live) == 1
    assert bay.cli.run("abort", str(live[0].id)).returncode == 0


def test_controller_killed_mid_canary_resumes_then_approval_promotes_and_on_call_rolls_back(
    given: Given, bay: Bay
) -> None:
    stable = bay.server("1")
    assert stable is not None
    good = bay.versions["good"]
    testers = Testers()
    then = (
        given.candidate("good").client_traffic(40)
        .when().launchbay("release", f"{MODEL}@{good}", "--detach")  # the controller drives it
        .phase_reached(Phase.SHADOW)
        .then().holds(testers.pinned_get_the_candidate, "a pinned tester gets the candidate in shadow")
        .when().phase_reached(Phase.CANARY)
        .then().holds(testers.users_drawn, "users by id are drawn at the first weight")
        .when()
        .controller_killed().waited(2)
        .then().traffic_split_unchanged()  # nothing moves it while no controller runs
        .when().launchbay("status")  # any command that finds the controller gone starts it again
        .then().controller_running()
        .when().phase_reached(Phase.AWAITING_APPROVAL)
        .then().holds(testers.users_kept, "each user keeps the version first given at a larger weight")
        .when().launchbay("approve", "{release}")  # as dana, the author ($LAUNCHBAY_USER)
        .then().exit_code(4).said("four eyes")
        .when().launchbay("approve", "{release}", "--as", "mallory")
        .then().exit_code(4).said("not an approver")
        # bob's name without bob's key (this machine has none of his): refused, and on record
        .when().launchbay_as_a_stranger("approve", "{release}", "--as", "bob")
        .then().exit_code(4).said("bob cannot sign").refusals_recorded_for("dana", "mallory", "bob")
        .when().launchbay("approve", "{release}", "--as", "alice", "--json")
        .then().exit_code(0).phase(Phase.PROMOTED).routes(stable=good).champion_is(good)
        .json_says(phase="promoted", approver="alice", version=good)
        .when().waited(2).launchbay("rollback", MODEL, "--as", "oncall", "--reason", "pager", "--json")
        .waited(0.5)
        .then().exit_code(0).phase(Phase.ROLLED_BACK).routes(stable="1").champion_is("1")
        .json_says(phase="rolled-back", changed=True, stable_version="1")
        # The previous stable stayed warm: the rollback was a route change, not a restart.
        .holds(lambda b, _r: b.server("1") == stable, "version 1 kept its server process")
        .no_client_failed()  # weight changes, a controller crash, promotion and rollback
        .clients_were_answered_by_the_candidate()
        .when().launchbay("rollback", MODEL, "--as", "oncall")
        .then().exit_code(0).said("already rolled-back")
        .when().launchbay("history", MODEL, "--json")
        .then().exit_code(0)
    )
    history = json.loads(then.c.result.stdout)  # type: ignore[union-attr]
    assert [e["action"] for e in history if e["release_id"] == then.c.release.id][-1] == "rollback"
    approved = next(e for e in history if e["action"] == "approved")
    assert approved["evidence"]["approval"]["statement"]["approver"] == "alice"
    audited = bay.cli.run("audit", MODEL)
    assert audited.returncode == 0 and "hash chain intact" in audited.stdout, audited.output
    assert "approved by alice: PASS signed by alice" in audited.stdout


def test_audit_names_a_tampered_ledger_row(bay: Bay, tmp_path: Path) -> None:
    import sqlite3

    copy = tmp_path / "ledger.db"
    with sqlite3.connect(bay.home / "ledger.db") as src, sqlite3.connect(copy) as dst:
        src.backup(dst)  # someone with the database file, editing a copy
        dst.execute("DROP TRIGGER events_no_update")
        # Any recorded event will do (the first is the one every run of this module has).
        (event_id,) = dst.execute("SELECT id FROM events WHERE action = 'created' LIMIT 1").fetchone()
        dst.execute("UPDATE events SET actor = 'mallory' WHERE id = ?", (event_id,))
    res = bay.cli.run("audit", MODEL, env={"LAUNCHBAY_LEDGER_URL": f"sqlite:///{copy}"})
    assert res.returncode == 1, res.output
    assert f"hash chain BROKEN at event #{event_id}" in res.stdout
    assert "its content differs from what was recorded" in res.stderr


@pytest.mark.linux_only("Debian's chromium: Playwright's own browser download needs the internet")
def test_release_managers_watch_it_live_on_the_page_and_only_a_non_author_approves_it(
    given: Given, bay: Bay, webhook: Receiver
) -> None:
    """Real Chromium against `launchbay ui` during a real rollout: the release page follows it live
    (timelines drawn from Prometheus), the author is shown why they cannot approve, an approver
    approves with one click and the release is promoted; the release managers' webhook is told
    that it waits and that it was promoted, once each."""
    from browser import artefacts, chromium, ui

    shots = artefacts("desk")
    good = bay.versions["good"]
    with ui(bay.cli) as (dana_url, dana), ui(bay.cli, "--as", "alice") as (alice_url, alice):
        assert (dana["signer"], alice["signer"]) == ("dana", "alice") and alice["key_id"]
        when = (
            given.candidate("good").client_traffic(40)
            .when().launchbay("release", f"{MODEL}@{good}", "--detach")
            .phase_reached(Phase.SHADOW)
        )  # fmt: skip
        rid = when.c.release.id
        base = dana_url.split("/?")[0]
        with chromium() as browser:
            author = browser.new_page(viewport={"width": 1280, "height": 1000})
            author.goto(dana_url)  # the token is exchanged for a cookie
            author.goto(f"{base}/releases/{rid}")
            assert author.locator("#phase").inner_text() in ("shadow", "canary")
            # Live: the timeline gains points while nobody reloads the page.
            author.wait_for_function(
                "document.querySelectorAll('svg[data-chart=p95] circle.pt').length >= 3", timeout=30_000
            )
            before = author.locator("svg[data-chart=p95] circle.pt").count()
            author.wait_for_selector("#phase:text('canary')", timeout=60_000)
            author.wait_for_function(
                f"document.querySelectorAll('svg[data-chart=p95] circle.pt').length > {before}",
                timeout=30_000,
            )
            assert author.locator("svg[data-chart=weight] circle.pt").count() >= 2  # shadow, then 25 %
            author.screenshot(path=str(shots / "1-canary-live.png"), full_page=True)
            # The page reloads itself when the release starts waiting for a decision.
            author.wait_for_selector("#decision", timeout=90_000)
            assert author.locator("#phase").inner_text() == "awaiting-approval"
            refusal = author.locator("#refusal").inner_text()
            assert "dana is the author" in refusal and "four eyes" in refusal, refusal
            assert author.locator("#approve").count() == 0 and author.locator("#reject").count() == 0
            author.screenshot(path=str(shots / "2-author-is-refused.png"), full_page=True)
            # Pressing a button that is not there (a crafted request with the page's token): refused.
            token = dana_url.split("token=")[1]
            crafted = author.request.post(
                f"{base}/releases/{rid}/decision", form={"decision": "approve", "csrf": token}
            )
            assert crafted.status == 403 and "four eyes" in crafted.text()
            timings = _page_timings(author.request, base, rid)
            approver = browser.new_page(viewport={"width": 1280, "height": 1000})
            approver.goto(alice_url)
            approver.goto(f"{alice_url.split('/?')[0]}/releases/{rid}")
            assert "You sign as alice" in approver.locator("#decision").inner_text()
            approver.fill("input[name=reason]", "latency and errors as stable's")
            approver.click("#approve")
            approver.wait_for_selector("#message", timeout=30_000)
            assert "approved by alice" in approver.locator("#message").inner_text()
            assert approver.locator("#phase").inner_text() == "promoted"
            approver.screenshot(path=str(shots / "3-approved-by-alice.png"), full_page=True)
            events = approver.locator("#events").inner_text()
            assert "approve-refused" in events and "approved" in events
    (shots / "timings.json").write_text(json.dumps(timings, indent=2))
    then = when.then().phase(Phase.PROMOTED).routes(stable=good).champion_is(good).no_client_failed()
    approved = next(e for e in bay.events(then.c.release) if e.action == "approved")
    assert approved.evidence["approval"]["statement"]["reason"] == "latency and errors as stable's"
    plotted = bay.cli.run("history", MODEL, "--plot", str(shots / "4-history-plot.png"), "--json")
    drawn = plotted.json()["charts"]
    # Ended: drawn from what the controller measured and the ledger kept, not from Prometheus.
    assert drawn["p95"]["source"] == "recorded" and drawn["p95"]["points"] > 10, drawn
    assert (shots / "4-history-plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Leave version 1 serving alone, as the other scenarios expect.
    assert bay.cli.run("rollback", MODEL, "--as", "oncall", "--reason", "scenario over").returncode == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(_told(webhook, rid)) < 3:
        time.sleep(0.2)
    told = _told(webhook, rid)
    assert [d["event"] for d in told] == ["awaiting-approval", "promoted", "rolled-back"], told
    assert told[1]["actor"] == "alice" and told[2]["reason"] == "scenario over"
    assert told[0]["page"] is None and told[0]["release"] == f"{MODEL}@v{good}#{rid}"


def _told(webhook: Receiver, release_id: int) -> list[dict[str, Any]]:
    return [d for d in webhook.delivered("/hook") if d["release_id"] == release_id]


def _page_timings(request: Any, base: str, rid: int, n: int = 10) -> dict[str, list[float]]:
    """Milliseconds per answer of each page, asked `n` times with the browser's cookie."""
    out: dict[str, list[float]] = {}
    for path in ("/", f"/releases/{rid}", f"/releases/{rid}/live"):
        out[path] = []
        for _ in range(n):
            started = time.perf_counter()
            res = request.get(base + path)
            out[path].append(round((time.perf_counter() - started) * 1000, 1))
            assert res.status == 200
    return out


def test_a_freeze_refuses_a_release_and_a_promotion_while_rollback_works(given: Given, bay: Bay) -> None:
    good = bay.versions["good"]
    try:
        (
            given.candidate("good").client_traffic(20)
            .when().launchbay("freeze", "on", "--as", "alice", "--reason", "incident 42", "--json")
            .then().exit_code(0).json_says(changed=True)
            .when().launchbay("release", f"{MODEL}@{good}")
            .then().exit_code(4).said("frozen by the emergency freeze by alice (incident 42)")
            .when().launchbay("freeze", "on", "--as", "mallory", "--reason", "me too")
            .then().exit_code(4).said("mallory is not a release manager")
            .when().launchbay("freeze", "off", "--as", "alice", "--reason", "incident over")
            .then().exit_code(0).said("is not frozen")
            .when().launchbay("release", f"{MODEL}@{good}", "--detach")
            .phase_reached(Phase.AWAITING_APPROVAL)
            .launchbay("freeze", "on", "--as", "alice", "--reason", "incident 43")
            .launchbay("approve", "{release}", "--as", "alice")
            .then().exit_code(4).said("is frozen by the emergency freeze by alice (incident 43)")
            .phase(Phase.AWAITING_APPROVAL)
            .when().launchbay("status")
            .then().said("frozen by the emergency freeze by alice (incident 43)")
            .when().launchbay("rollback", MODEL, "--as", "oncall", "--reason", "pager")
            .then().exit_code(0).phase(Phase.ROLLED_BACK).routes(stable="1")
            .when().launchbay("audit", MODEL)
            .then().exit_code(0).said("freeze-on by alice: PASS")
        )
    finally:
        bay.cli.run("freeze", "off", "--as", "alice", "--reason", "the scenario ended")


def test_a_model_card_is_written_from_the_signed_card_and_the_ledger_and_verified(
    bay: Bay, tmp_path: Path
) -> None:
    card = tmp_path / "card.md"
    made = bay.cli.run("card", f"{MODEL}@1", "-o", str(card), "--json")
    assert made.returncode == 0, made.output
    doc = json.loads(made.stdout)
    assert doc["version"] == "1" and doc["releases"] >= 1 and doc["verified_with"]
    text = card.read_text()
    assert text.startswith("---\nmodel_name: fraud-detector\n")
    for section in ("## Intended use", "## Training data", "## Evaluation", "## Provenance", "## Rollout",
                    "## Signature check"):  # fmt: skip
        assert section in text, section
    assert f"### {MODEL}@v1#" in text and "first version" in text  # its release, from the ledger
    verified = bay.cli.run("verify", f"{MODEL}@1", "--json")
    assert verified.returncode == 0, verified.output
    assert json.loads(verified.stdout)["provenance"]["model card"] == f"sha256:{doc['signed_card_sha256']}"
    missing = bay.cli.run("card", f"{MODEL}@99")
    assert missing.returncode == 2 and "Traceback" not in missing.output, missing.output
