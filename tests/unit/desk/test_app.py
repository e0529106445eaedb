"""The release managers' page over a real ledger and the rollout's fakes: what each person sees,
what the page offers them, and what happens when they (or someone else) press a button."""

from __future__ import annotations

import re
from pathlib import Path

import people
import pytest
from rollout_fakes import World, world
from starlette.testclient import TestClient

from launchbay.desk.app import COOKIE, Desk, app
from launchbay.desk.signing import Signer
from launchbay.rollout.engine import decisions, operations
from launchbay.rollout.engine.phases import Phase
from launchbay.rollout.engine.plan import Approval, Plan, SetWeight
from launchbay.rollout.engine.release import Release
from launchbay.rollout.metrics.base import Series

TOKEN = "s3cret-token"


class Ranges:
    """Prometheus' range answers: one point a second over the asked span, per query kind."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def query_range(self, query: str, start: float, end: float, step: float) -> Series:
        self.asked.append(query)
        value = 12.0 if "histogram_quantile" in query else 0.001
        n = int((end - start) // step) + 1
        return Series(tuple((start + i * step, value) for i in range(min(n, 30))), None, query)


def _awaiting(tmp_path: Path) -> tuple[World, Release]:
    w = world(tmp_path)
    w.registry.tags["2"] = {decisions.SIGNATURE_TAG: "f" * 64}
    r = w.ticks(operations.create(w.ctx, "2", "dana"), 40)
    assert r.phase is Phase.AWAITING_APPROVAL
    return w, r


def _client(w: World, person: str) -> TestClient:
    signer = Signer.load(person, str(people.key(person)))
    desk = Desk(w.ctx, signer, TOKEN, {"testserver"}, Ranges())
    client = TestClient(app(desk), follow_redirects=False)
    res = client.get(f"/?token={TOKEN}")
    assert res.status_code == 303 and res.headers["location"] == "/"
    client.cookies.set(COOKIE, res.cookies[COOKIE])
    return client


def test_the_page_needs_the_printed_token_and_its_own_host(tmp_path: Path) -> None:
    w, _ = _awaiting(tmp_path)
    desk = Desk(w.ctx, Signer.load("alice", str(people.key("alice"))), TOKEN, {"testserver"}, None)
    client = TestClient(app(desk), follow_redirects=False)
    refused = client.get("/")
    assert refused.status_code == 401 and refused.headers["content-type"] == "text/plain; charset=utf-8"
    assert client.get("/?token=guess").status_code == 401
    rebound = client.get(f"/?token={TOKEN}", headers={"Host": "evil.example:8765"})
    assert rebound.status_code == 421  # a DNS-rebinding page cannot use the token either
    ok = client.get(f"/releases/1?token={TOKEN}")
    assert ok.status_code == 303 and ok.headers["location"] == "/releases/1"
    cookie = ok.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie


def test_releases_list_shows_phase_step_weights_author_and_why(tmp_path: Path) -> None:
    w, r = _awaiting(tmp_path)
    page = _client(w, "alice").get("/").text
    row = re.search(rf'<tr data-release="{r.id}">(.*?)</tr>', page, re.S)
    assert row is not None
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    assert r.name in cells[0] and cells[1] == "awaiting-approval"
    assert cells[5] == "dana"  # the author
    assert "approval" in cells[7] or cells[7]  # why it is where it is


def test_the_author_is_offered_no_button_and_is_told_why(tmp_path: Path) -> None:
    w, r = _awaiting(tmp_path)
    client = _client(w, "dana")
    page = client.get(f"/releases/{r.id}").text
    assert 'id="approve"' not in page and 'id="reject"' not in page
    assert "four eyes" in re.search(r'<p id="refusal">(.*?)</p>', page, re.S).group(1)  # type: ignore[union-attr]
    # Pressing it anyway (a crafted POST with the page's own token) is refused and recorded.
    res = client.post(f"/releases/{r.id}/decision", data={"decision": "approve", "csrf": TOKEN})
    assert res.status_code == 403 and "four eyes" in res.text
    assert w.ledger.get(r.id).phase is Phase.AWAITING_APPROVAL
    last = w.ledger.history(release_id=r.id)[-1]
    assert (last.actor, last.action) == ("dana", "approve-refused")


def test_an_approver_approves_from_the_page_with_a_signed_statement(tmp_path: Path) -> None:
    w, r = _awaiting(tmp_path)
    client = _client(w, "alice")
    page = client.get(f"/releases/{r.id}").text
    assert 'id="approve"' in page and 'id="reject"' in page and "You sign as <b>alice</b>" in page
    # Without the form's token (a cross-site form) nothing happens.
    forged = client.post(f"/releases/{r.id}/decision", data={"decision": "approve"})
    assert forged.status_code == 403 and w.ledger.get(r.id).phase is Phase.AWAITING_APPROVAL
    res = client.post(
        f"/releases/{r.id}/decision", data={"decision": "approve", "csrf": TOKEN, "reason": "looks good"}
    )
    assert res.status_code == 303
    assert w.ledger.get(r.id).phase is Phase.PROMOTED
    approved = next(e for e in w.ledger.history(release_id=r.id) if e.action == "approved")
    statement = approved.evidence["approval"]["statement"]
    assert (approved.actor, statement["approver"], statement["reason"]) == ("alice", "alice", "looks good")
    after = client.get(res.headers["location"]).text
    assert "approved by alice" in after and 'id="approve"' not in after
    # A second press (a stale tab) is refused: the release no longer waits.
    again = client.post(f"/releases/{r.id}/decision", data={"decision": "approve", "csrf": TOKEN})
    assert again.status_code == 403 and "not awaiting approval" in again.text


def test_someone_not_an_approver_sees_the_rule_and_a_person_without_a_key_is_told(tmp_path: Path) -> None:
    w, r = _awaiting(tmp_path)
    page = _client(w, "mallory").get(f"/releases/{r.id}").text
    assert "not an approver" in page and 'id="approve"' not in page
    nokey = Signer.load("bob", str(tmp_path / "nowhere.pem"))
    assert nokey.key_id is None and nokey.problem and "bob cannot sign" in nokey.problem


def test_the_release_page_draws_timelines_analyses_and_the_event_log(tmp_path: Path) -> None:
    w, r = _awaiting(tmp_path)
    page = _client(w, "alice").get(f"/releases/{r.id}").text
    charts = dict(re.findall(r'<svg class="chart" data-chart="(\w+)"(.*?)</svg>', page, re.S))
    assert set(charts) == {"p95", "errors", "shadow", "weight"}
    assert charts["p95"].count('class="pt"') >= 3 and "v2" in charts["p95"] and "v1" in charts["p95"]
    assert "12.0 ms" in charts["p95"]  # values readable off the points
    assert charts["weight"].count('class="pt"') >= 3  # shadow, 20 %, 50 %, awaiting approval
    assert 'class="analysis" data-verdict="PASS"' in page
    events = re.search(r'<table id="events">(.*?)</table>', page, re.S).group(1)  # type: ignore[union-attr]
    assert events.count("<tr>") == len(w.ledger.history(release_id=r.id)) + 1


def test_text_from_the_ledger_is_escaped(tmp_path: Path) -> None:
    w, r = _awaiting(tmp_path)
    w.ledger.record(
        r, actor="<img src=x onerror=alert(1)>", action="note", reason="<script>alert(1)</script>"
    )
    page = _client(w, "alice").get(f"/releases/{r.id}").text
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page


def test_the_live_part_and_the_json_name_the_phase(tmp_path: Path) -> None:
    w, r = _awaiting(tmp_path)
    client = _client(w, "alice")
    live = client.get(f"/releases/{r.id}/live")
    assert live.headers["X-Phase"] == "awaiting-approval" and '<td class="phase' in live.text
    doc = client.get(f"/api/releases/{r.id}").json()
    assert doc["phase"] == "awaiting-approval" and doc["offer"]["allowed"] == ["approve", "reject"]
    assert {c["key"] for c in doc["charts"]} == {"p95", "errors", "shadow", "weight"}
    assert client.get("/releases/999").status_code == 404


@pytest.mark.parametrize("decision", ["", "promote", "approve&x"])
def test_a_malformed_decision_is_a_4xx_naming_the_field(tmp_path: Path, decision: str) -> None:
    w, r = _awaiting(tmp_path)
    res = _client(w, "alice").post(f"/releases/{r.id}/decision", data={"decision": decision, "csrf": TOKEN})
    assert res.status_code == 422 and "decision" in res.text
    assert w.ledger.get(r.id).phase is Phase.AWAITING_APPROVAL


def test_signature_provenance_and_gate_reports_of_the_training_run_are_shown(tmp_path: Path) -> None:
    from launchbay.checks.registered import Origin, Verification
    from launchbay.checks.report import CheckResult, GateReport
    from launchbay.checks.signature import VerifyResult
    from launchbay.checks.verdict import Verdict
    from launchbay.rollout.engine.controller import Controller

    w = world(tmp_path)
    origin = Origin("0123abcd", "sha256:da7a", "run-42", {"data": "PASS", "model": "PASS"})
    checked = Verification(
        "fraud-detector", "2", VerifyResult(Verdict.PASS, "signature verified", "k.pub"), origin
    )
    report = GateReport("data", [CheckResult("amount: no nulls", Verdict.PASS, 0, 0, column="amount")])
    report.write(w.ctx.home.reports / "run-42", "data_gate")
    c = Controller(w.ctx, w.metrics, clock=w.clock, verifier=lambda _c, _r: checked)
    r = w.ticks(operations.create(w.ctx, "2", "dana"), 10, c=c)
    page = _client(w, "alice").get(f"/releases/{r.id}").text
    signature = re.search(r'<table class="facts" id="signature">(.*?)</table>', page, re.S).group(1)  # type: ignore[union-attr]
    assert "signature verified" in signature and "0123abcd" in signature and "run-42" in signature
    assert "sha256:da7a" in signature
    reports = re.search(r'<details class="report"(.*?)</details>', page, re.S).group(1)  # type: ignore[union-attr]
    assert "data gate" in reports and "amount: no nulls" in reports and "PASS" in reports


def test_a_release_of_another_model_in_a_shared_ledger_is_shown_but_not_decided_here(tmp_path: Path) -> None:
    w, _ = _awaiting(tmp_path)
    plan = Plan(steps=(SetWeight(percent=10), Approval(approvers=("alice",))))
    other = w.ledger.create(model="churn", version="4", author="erin", stable_version="3", plan=plan)
    for phase, step in ((Phase.VERIFIED, 0), (Phase.CANARY, 0), (Phase.AWAITING_APPROVAL, 1)):
        other = w.ledger.move(other, phase, actor="test", action="step", step_index=step)
    client = _client(w, "alice")
    assert other.name in client.get("/").text
    page = client.get(f"/releases/{other.id}").text
    assert 'id="approve"' not in page and "churn is not this project" in page
    res = client.post(f"/releases/{other.id}/decision", data={"decision": "approve", "csrf": TOKEN})
    assert res.status_code == 403 and w.ledger.get(other.id).phase is Phase.AWAITING_APPROVAL


def test_an_ended_release_is_drawn_from_what_the_controller_recorded_not_from_prometheus(
    tmp_path: Path,
) -> None:
    w, r = _awaiting(tmp_path)
    people.approve(w.ctx, str(r.id), "alice")
    w.controller().tick_all()
    doc = _client(w, "alice").get(f"/api/releases/{r.id}").json()
    charts = {c["key"]: c for c in doc["charts"]}
    assert charts["p95"]["source"] == "recorded"
    assert "as the controller measured them" in charts["p95"]["note"]
    recorded = [s for e in w.ledger.history(release_id=r.id) for s in e.evidence.get("samples", [])]
    drawn = {ln["label"]: ln["points"] for ln in charts["p95"]["lines"]}
    assert len(drawn["v2"]) + len(drawn["v2 mirrored"]) == sum(1 for s in recorded if "c_p95" in s)
    assert charts["weight"]["source"] == "ledger"


def test_requests_nobody_designed_for_get_a_4xx_and_a_ledger_that_went_away_a_503(tmp_path: Path) -> None:
    import sqlalchemy as sa
    from harness import closed_port

    w, r = _awaiting(tmp_path)
    client = _client(w, "alice")
    for path in ("/releases/99999999999999999999999", "/releases/-1", "/releases/1e3", "/api/releases/%00"):
        assert client.get(path).status_code == 404, path
    res = client.post("/releases/99999999999999999999/decision", data={"decision": "approve", "csrf": TOKEN})
    assert res.status_code == 404
    w.ctx.ledger.engine = sa.create_engine(f"postgresql+psycopg://lb@127.0.0.1:{closed_port()}/ledger")
    down = client.get(f"/releases/{r.id}")
    assert down.status_code == 503 and "the ledger cannot be read right now" in down.text


def test_the_page_of_the_watched_version_draws_the_monitors_timelines(tmp_path: Path) -> None:
    from rollout_fakes import config

    from launchbay.config.monitor import MonitorSection, RetrainSection
    from launchbay.rollout.monitor.state import State

    cfg = config().model_copy(update={"monitor": MonitorSection(retrain=RetrainSection(on=[]))})
    w = world(tmp_path, cfg)
    w.registry.tags["2"] = {decisions.SIGNATURE_TAG: "f" * 64}
    r = w.ticks(operations.create(w.ctx, "2", "dana"), 40)
    timeline = [{"at": 1000.0 + i, "rows": 10, "labelled": 2, "losses": 0, "drift": 0.5 * i, "loss": 0.1,
                 "level": 6.8} for i in range(5)]  # fmt: skip
    State(version="2", timeline=timeline).save(tmp_path / "local" / "fraud-detector" / "monitor")
    page = _client(w, "alice").get(f"/releases/{r.id}").text
    charts = dict(re.findall(r'<svg class="chart" data-chart="([\w-]+)"(.*?)</svg>', page, re.S))
    assert (
        charts["monitor-drift"].count('class="pt"') == 5 and charts["monitor-loss"].count('class="pt"') == 5
    )
    State(version="3", timeline=timeline).save(tmp_path / "local" / "fraud-detector" / "monitor")
    again = _client(w, "alice").get(f"/releases/{r.id}").text
    assert "monitor-drift" not in again  # another version is watched now: not this release's story
