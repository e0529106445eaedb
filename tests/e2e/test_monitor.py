"""Production monitoring closes the loop, against real processes.

Version 1 of the example serves behind the gateway, its model server keeping its answers with
each row (`monitor.capture`), and the always-on controller's monitor pulls them every second.
Stationary traffic -- rows from the distribution version 1 was trained on -- raises nothing.
Then traffic shifts (the example's "drifted" transactions), labels come back by request id
(half through the gateway's `POST /feedback`, half as a file for `launchbay feedback`), the
monitor alarms, notifies, retrains on the captured window, and the retrained candidate goes
through every gate, shadow and canary, and stops at awaiting approval: nobody approved it.
"""

from __future__ import annotations

import csv
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fraud_data
import httpx
import people
import pytest
from fraud_model import FEATURES
from harness import Launchbay
from projects import FAST_ROLLOUT, write_project
from rollout_dsl import MODEL, Bay, stop_everything
from webhooks import Receiver

from launchbay.checks.signature import generate_keypair
from launchbay.rollout.engine.phases import Phase

pytestmark = pytest.mark.slow

ROLLOUT = {
    **FAST_ROLLOUT,
    # A retrained model differs from the champion by design: shadow allows what the model gate
    # measured between the two offline, plus a margin.
    "shadow": {"duration": "4s", "max_disagreement": "offline", "max_score_shift": "offline", "margin": 0.05},
    "approval": {"required": True, "approvers": people.approvers("alice", "bob")},
}
MONITOR = {
    "every": "1s",
    "bet_every": "5s",
    "keep": "10m",
    "retrain": {"min_labelled": 1500, "cooldown": "1h"},
}
SHIFTED = 2400


class Traffic:
    """Clients sending rows through the gateway at a steady rate, each with its own request id."""

    def __init__(self, url: str, rows: list[dict[str, Any]], rate: float) -> None:
        self.url, self.rows, self.rate = url, rows, rate
        self.answered: dict[str, dict[str, Any]] = {}
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._send, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def wait_sent(self, n: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while len(self.answered) < min(n, len(self.rows)):
            assert time.monotonic() < deadline, f"only {len(self.answered)} of {n} answered"
            time.sleep(0.2)

    def _send(self) -> None:
        with httpx.Client(timeout=10) as client:
            i = 0
            while not self._stop.is_set():
                row = self.rows[i % len(self.rows)]
                rid = f"{row['transaction_id']}-{i // len(self.rows)}"
                body = {"row": {f: row[f] for f in FEATURES}}
                try:
                    r = client.post(self.url + "/predict", json=body, headers={"X-Request-Id": rid})
                    if r.status_code == 200:
                        assert r.headers["X-Request-Id"] == rid  # the client's own id is kept
                        self.answered[rid] = row
                    else:
                        self.failed += 1
                except httpx.HTTPError:
                    self.failed += 1
                i += 1
                self._stop.wait(1 / self.rate)


def _rows(variant: fraud_data.Variant, seed: int, n: int) -> list[dict[str, Any]]:
    frame = fraud_data.generate(n, variant, seed=seed)
    return [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in frame.to_dict("records")
    ]


@pytest.fixture(scope="module")
def bay(tmp_path_factory: pytest.TempPathFactory, webhook: Receiver) -> Iterator[Bay]:
    root = tmp_path_factory.mktemp("monitor")
    home = root / "home"
    generate_keypair(home / "keys")
    notifications = {"webhooks": [{"name": "on-call", "url_env": "ONCALL_WEBHOOK"}]}
    write_project(
        root, rows=5000, overrides={"rollout": ROLLOUT, "monitor": MONITOR, "notifications": notifications}
    )
    env = {"LAUNCHBAY_USER": "dana", "ONCALL_WEBHOOK": f"{webhook.url}/hook"}
    b = Bay(root, home, Launchbay(root, home, env=env))
    try:
        first = b.cli.run("run")  # version 1: the champion (no champion before it: no approval)
        assert first.returncode == 0, first.output
        yield b
    finally:
        stop_everything(b)


def _monitor(bay: Bay) -> dict[str, Any]:
    got = bay.cli.run("monitor", "--json")
    assert got.returncode == 0, got.output
    doc: dict[str, Any] = json.loads(got.stdout)
    return doc


def _until(bay: Bay, what: str, check: Any, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        doc = _monitor(bay)
        if check(doc):
            return doc
        assert time.monotonic() < deadline, (
            f"{what}: {json.dumps({k: v for k, v in doc.items() if k != 'timeline'})}"
        )
        time.sleep(1)


def _label(bay: Bay, traffic: Traffic) -> None:
    """Labels of every answered row: half posted to the gateway, half handed in as a file."""
    items = [{"id": rid, "label": row["is_fraud"]} for rid, row in list(traffic.answered.items())]
    half = len(items) // 2
    token = (bay.home / "local" / MODEL / "feedback.token").read_text().strip()
    with httpx.Client(timeout=10) as client:
        assert client.post(bay.gateway + "/feedback", json={"labels": items[:1]}).status_code == 401
        wrong = client.post(
            bay.gateway + "/feedback", json={"labels": items[:1]}, headers={"Authorization": "Bearer nope"}
        )
        assert wrong.status_code == 403
        bad = client.post(
            bay.gateway + "/feedback",
            json={"labels": [{"id": "x"}]},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert bad.status_code == 400 and "label" in bad.json()["error"]
        for start in range(0, half, 500):
            r = client.post(
                bay.gateway + "/feedback",
                json={"labels": items[start : min(start + 500, half)]},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 200, r.text
    path = bay.root / "labels.csv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, ["request_id", "is_fraud"])
        w.writeheader()
        w.writerows({"request_id": i["id"], "is_fraud": i["label"]} for i in items[half:])
    handed = bay.cli.run("feedback", str(path), "--json")
    assert handed.returncode == 0 and json.loads(handed.stdout)["accepted"] == len(items) - half, (
        handed.output
    )


def test_stationary_traffic_raises_nothing_then_a_shift_is_retrained_through_every_gate_to_approval(
    bay: Bay, webhook: Receiver
) -> None:
    # Stationary: rows of the distribution version 1 was trained on, repeated rows among them.
    calm = _rows("good", seed=21, n=1500)
    with Traffic(bay.gateway, calm + calm[:100], rate=60) as traffic:
        traffic.wait_sent(1600)
        doc = _until(bay, "the monitor counts the calm rows", lambda d: d["rows"] >= 1400, 60)
    assert doc["version"] == "1" and doc["monitored"], doc["unmonitored"]
    assert doc["alarms"] == [] and doc["repeated"] >= 90  # a row sent again counts once
    assert doc["drift"]["evidence_log10"] < doc["drift"]["alarm_log10"] - 2
    assert traffic.failed == 0

    # The shift: the example's drifted transactions, labelled after the fact.
    shifted = _rows("drifted", seed=22, n=SHIFTED)
    with Traffic(bay.gateway, shifted, rate=100) as traffic:
        alarmed = _until(bay, "a drift alarm", lambda d: any(a["kind"] == "drift" for a in d["alarms"]), 90)
        waiting = alarmed["waiting_for"] or ""
        traffic.wait_sent(SHIFTED, timeout=180)
        _label(bay, traffic)
        # The retrain: every gate, then shadow and canary on the shifted traffic still flowing.
        started = _until(bay, "a retrain", lambda d: d["retrain"] is not None, 60)
        assert started["retrain"]["rows"] >= 1500
        ended = _until(
            bay, "the retrain to end", lambda d: (d["retrain"] or {}).get("ended") is not None, 600
        )
    assert "labels" in waiting or alarmed["retrain"] is not None, alarmed
    outcome = ended["retrain"]["ended"]
    log = Path(ended["retrain"]["log"]).read_text()[-3000:]
    assert outcome["succeeded"] and outcome["phase"] == "awaiting-approval", (outcome, log)

    release = bay.ledger.get(int(outcome["release"]))
    assert release.author == "launchbay-monitor" and release.phase is Phase.AWAITING_APPROVAL
    phases = [e.phase_to for e in bay.ledger.history(release_id=release.id)]
    assert Phase.SHADOW in phases and Phase.CANARY in phases and Phase.PROMOTED not in phases
    notes = [e.action for e in bay.ledger.notes(MODEL)]
    assert notes[:1] == ["drift-detected"] and "retrain-started" in notes and "retrain-ended" in notes
    told = [
        m["event"] for m in webhook.delivered("/hook") if m.get("type", "").startswith("launchbay.model.")
    ]
    assert "drift-detected" in told and "retrain-started" in told, told
    assert bay.routes()["stable"]["version"] == "1"  # it serves nobody until a release manager approves
