"""The gateway as a real process in front of real HTTP backends: split, mirror, compare, survive."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gateway_process import FakeModel, GatewayProcess


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(tmp_path / "gw")
    yield gw
    gw.stop()


def test_without_a_deployed_version_clients_get_503(gateway: GatewayProcess) -> None:
    assert gateway.predict().status_code == 503


def test_weighted_split_and_every_response_names_its_version(gateway: GatewayProcess, models: dict) -> None:
    models["1"], models["2"] = FakeModel("1"), FakeModel("2", prediction=1)
    gateway.split(models["1"], models["2"], canary_weight=25)
    with httpx.Client() as client:
        answers = [gateway.predict(client) for _ in range(400)]
    versions = [r.headers["X-Launchbay-Version"] for r in answers]
    assert all(r.status_code == 200 for r in answers)
    assert all(json.loads(r.content)["version"] == v for r, v in zip(answers, versions, strict=True))
    share = versions.count("2") / len(versions)
    assert 0.15 < share < 0.35, share
    assert gateway.metric("launchbay_gateway_requests_total", version="2", role="primary") == versions.count(
        "2"
    )


def test_shadow_answers_come_from_stable_and_are_compared_with_the_candidate(
    gateway: GatewayProcess, models: dict
) -> None:
    models["1"], models["2"] = FakeModel("1", prediction=0), FakeModel("2", prediction=1)
    gateway.split(models["1"], models["2"], mirror=True)
    with httpx.Client() as client:
        answers = [gateway.predict(client, json={"row": {"x": i}}) for i in range(60)]
        # The same rows again (a customer scored twice, a client walking one list): counted once.
        answers += [gateway.predict(client, json={"row": {"x": i % 5}}) for i in range(20)]
        answers.append(gateway.predict(client, json={"rows": [{"x": 1000}, {"x": 3}, {"x": 1001}]}))
    assert {r.headers["X-Launchbay-Version"] for r in answers} == {"1"}
    deadline = time.monotonic() + 10
    while gateway.metric("launchbay_shadow_repeated_rows_total") < 21 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert models["2"].hits == 81  # every request is mirrored: the candidate's errors all count
    assert gateway.metric("launchbay_shadow_compared_rows_total", stable="1", candidate="2") == 62
    assert gateway.metric("launchbay_shadow_repeated_rows_total", stable="1", candidate="2") == 21
    assert gateway.metric("launchbay_shadow_disagreement_rows_total", stable="1", candidate="2") == 62
    assert gateway.metric("launchbay_shadow_score_diff_count") == 62
    # A new shadow phase (the same versions released again): its rows count afresh.
    gateway.split(models["1"], models["2"], canary_weight=0)
    gateway.split(models["1"], models["2"], mirror=True)
    with httpx.Client() as client:
        for i in range(5):
            gateway.predict(client, json={"row": {"x": i}})
    deadline = time.monotonic() + 10
    while gateway.metric("launchbay_shadow_compared_rows_total") < 67 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gateway.metric("launchbay_shadow_compared_rows_total", stable="1", candidate="2") == 67


def test_the_series_an_analysis_asks_about_exist_at_zero_before_the_first_event(
    gateway: GatewayProcess, models: dict
) -> None:
    # Prometheus' increase() counts from a series' first sample: a 5xx counter born with the
    # candidate's first error would hide it from the analysis for a scrape or two.
    models["1"], models["2"] = FakeModel("1"), FakeModel("2")
    gateway.split(models["1"], models["2"], mirror=True)
    text = httpx.get(f"{gateway.url}/metrics", timeout=5).text
    for series in (
        'launchbay_gateway_requests_total{code="5xx",role="shadow",version="2"} 0.0',
        'launchbay_gateway_requests_total{code="5xx",role="primary",version="1"} 0.0',
        'launchbay_shadow_compared_rows_total{candidate="2",stable="1"} 0.0',
        'launchbay_shadow_disagreement_rows_total{candidate="2",stable="1"} 0.0',
    ):
        assert series in text, series


def test_a_slow_shadow_never_slows_users_and_overflow_is_dropped_and_counted(
    tmp_path: Path, models: dict
) -> None:
    gw = GatewayProcess(tmp_path / "gw", queue_size=5)
    try:
        models["1"], models["2"] = FakeModel("1"), FakeModel("2", delay=2.0)
        gw.routes(stable=gw.register(models["1"]), canary=gw.register(models["2"]), mirror=True)
        start = time.perf_counter()
        with httpx.Client() as client:
            answers = [gw.predict(client) for _ in range(50)]
        elapsed = time.perf_counter() - start
        assert all(r.status_code == 200 for r in answers)
        assert elapsed < 2.0, elapsed  # not waiting for the 2 s shadow
        assert gw.metric("launchbay_shadow_dropped_total") >= 50 - 5 - 4  # queue 5, 4 workers busy
    finally:
        gw.stop()


def test_changing_routes_loses_no_in_flight_request(gateway: GatewayProcess, models: dict) -> None:
    models["1"], models["2"] = FakeModel("1", delay=1.0), FakeModel("2")
    gateway.routes(stable=gateway.register(models["1"]))
    results: list[httpx.Response] = []
    slow = threading.Thread(target=lambda: results.append(gateway.predict()))
    slow.start()
    # The request reaches version 1 (which takes 1 s to answer) when the machine gets to it: wait
    # for it there, not a fixed time (under a loaded suite, 0.3 s was not always enough).
    deadline = time.monotonic() + 5
    while gateway.state()["inflight"].get("1") != 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert gateway.state()["inflight"].get("1") == 1
    gateway.routes(stable=gateway.register(models["2"]))  # promote while version 1 is answering
    after = gateway.predict()
    slow.join()
    assert results[0].status_code == 200 and results[0].headers["X-Launchbay-Version"] == "1"
    assert after.headers["X-Launchbay-Version"] == "2"


def test_a_dead_backend_is_a_502_counted_as_its_versions_error(gateway: GatewayProcess, models: dict) -> None:
    models["9"] = FakeModel("9")
    dead = gateway.register(models["9"])
    models.pop("9").stop()  # launchbay's server of version 9, which has just died
    gateway.routes(stable=dead)
    res = gateway.predict()
    assert res.status_code == 502 and res.headers["X-Launchbay-Version"] == "9"
    assert gateway.metric("launchbay_gateway_requests_total", version="9", code="5xx") == 1


def test_the_client_port_cannot_change_routes_and_the_admin_channel_needs_the_token(
    gateway: GatewayProcess, models: dict
) -> None:
    models["1"] = FakeModel("1")
    gateway.routes(stable=gateway.register(models["1"]))
    forged = {"stable": {"version": "1", "url": "http://127.0.0.1:18999"}}
    for method in ("GET", "PUT"):
        on_client_port = httpx.request(method, f"{gateway.url}/_launchbay/routes", json=forged)
        assert on_client_port.status_code == 404
    no_token = httpx.put(gateway.current.admin_url + "/routes", json=forged)
    wrong_token = httpx.put(
        gateway.current.admin_url + "/routes", json=forged, headers={"Authorization": "Bearer guess"}
    )
    assert no_token.status_code == wrong_token.status_code == 401
    assert gateway.metric("launchbay_gateway_route_refusals_total", reason="token") == 2
    assert gateway.predict().headers["X-Launchbay-Version"] == "1" and models["1"].hits == 1


def test_a_route_to_anything_but_launchbays_server_of_that_version_is_refused(
    gateway: GatewayProcess, models: dict
) -> None:
    models["1"], models["2"] = FakeModel("1"), FakeModel("2")
    stable = gateway.register(models["1"])
    gateway.routes(stable=stable)
    rogue = FakeModel("2")  # a server nobody registered, claiming to be version 2
    try:
        for forged in (
            {"stable": {"version": "2", "url": rogue.url}},  # version 2 has no server of launchbay's
            {"stable": {"version": "1", "url": rogue.url}},  # not version 1's server
            {"stable": stable, "canary": {"version": "1", "url": "http://example.com"}, "canary_weight": 5},
        ):
            res = gateway._admin("PUT", **forged)
            assert res.status_code == 403 and res.json()["error"].startswith("refused: "), res.text
        assert gateway.metric("launchbay_gateway_route_refusals_total", reason="backend") == 3
        assert gateway.state()["stable"] == stable  # unchanged
        assert gateway.predict().headers["X-Launchbay-Version"] == "1" and rogue.hits == 0
    finally:
        rogue.stop()


def test_a_killed_worker_is_replaced_on_the_same_port_within_a_second_with_its_routes(
    gateway: GatewayProcess, models: dict
) -> None:
    models["1"], models["2"] = FakeModel("1"), FakeModel("2")
    gateway.split(models["1"], models["2"], canary_weight=50)
    bad = gateway._admin("PUT", stable=gateway.register(models["1"]), canary_weight=30)
    assert bad.status_code == 400 and "needs a canary" in bad.text
    standby = gateway.standby()  # a gateway that has been up: its next worker waits, imports done
    worker = gateway.current.pid  # the recorded gateway process: the one serving clients
    os.kill(worker, signal.SIGKILL)
    killed = time.monotonic()
    answered = None
    with httpx.Client() as client:
        while time.monotonic() - killed < 5:
            try:
                if gateway.predict(client).status_code == 200:
                    answered = time.monotonic() - killed
                    break
            except httpx.HTTPError:
                time.sleep(0.02)
    assert answered is not None and answered < 1.0, answered
    rec = gateway.current
    assert rec.pid == standby and rec.port == gateway.port and rec.restarts == 1
    assert rec.last_exit == "killed by signal 9 (SIGKILL)"
    state = gateway.state()
    assert state["canary_weight"] == 50 and state["canary"]["version"] == "2"
    assert gateway.standby() not in (worker, standby)  # and another standby waits behind it


def test_a_body_that_is_not_json_is_a_415_and_counts_against_no_version(
    gateway: GatewayProcess, models: dict
) -> None:
    models["1"], models["2"] = FakeModel("1"), FakeModel("2")
    gateway.split(models["1"], models["2"], canary_weight=50)
    res = gateway.predict(
        content=b'{"row": {"x": 1}}', headers={"Content-Type": "multipart/form-data; boundary=x"}
    )
    assert res.status_code == 415 and "send application/json" in res.json()["error"]
    assert (
        gateway.predict(content=b'{"row": {"x": 1}}', headers={"Content-Type": "text/plain"}).status_code
        == 415
    )
    assert models["1"].hits == models["2"].hits == 0
    assert gateway.metric("launchbay_gateway_rejected_requests_total", reason="content-type") == 2
    assert gateway.metric("launchbay_gateway_requests_total") == 0  # no version's numbers moved
    assert gateway.predict().status_code == 200  # application/json is served


def test_a_failing_canary_is_retried_on_stable_and_still_counted_against_the_canary(
    gateway: GatewayProcess, models: dict
) -> None:
    models["1"], models["2"] = FakeModel("1"), FakeModel("2", status=500)
    gateway.split(models["1"], models["2"], canary_weight=50)
    with httpx.Client() as client:
        answers = [gateway.predict(client) for _ in range(100)]
    assert all(r.status_code == 200 for r in answers)  # users never see the canary's failures
    assert {r.headers["X-Launchbay-Version"] for r in answers} == {"1"}
    retried = [r for r in answers if r.headers.get("X-Launchbay-Retried-From") == "2"]
    assert models["2"].hits == len(retried) > 20
    # ... but the analysis sees them: every one is a 5xx of version 2.
    assert gateway.metric("launchbay_gateway_requests_total", version="2", code="5xx") == len(retried)
    assert gateway.metric("launchbay_gateway_canary_retries_total", version="2") == len(retried)


def test_a_hung_canary_costs_each_client_one_short_wait_and_counts_against_the_canary(
    gateway: GatewayProcess, models: dict
) -> None:
    # The tester's case: a SIGSTOPped candidate kept 349 requests waiting 30 s (the backend timeout).
    models["1"], models["2"] = FakeModel("1"), FakeModel("2", delay=8.0)  # far past any deadline
    gateway.split(models["1"], models["1"], canary_weight=0)
    with httpx.Client() as client:
        for _ in range(30):  # stable's recent latency: the basis of the canary's deadline
            assert gateway.predict(client).status_code == 200
        gateway.split(models["1"], models["2"], canary_weight=50)
        timed = []
        for _ in range(20):
            t0 = time.perf_counter()
            answer = gateway.predict(client)
            timed.append((time.perf_counter() - t0, answer))
    assert all(r.status_code == 200 and r.headers["X-Launchbay-Version"] == "1" for _, r in timed)
    hedged = [s for s, r in timed if r.headers.get("X-Launchbay-Retried-From") == "2"]
    assert hedged and max(hedged) < 1.5, hedged  # the 0.5 s floor (4x stable's p99 is less), then stable
    # ... and the analysis sees every hedged request as the candidate's failure, with its real wait
    assert gateway.metric("launchbay_gateway_requests_total", version="2", code="5xx") == len(hedged)
    assert gateway.metric("launchbay_gateway_request_duration_seconds_bucket", version="2", le="0.2") == 0
    assert gateway.metric("launchbay_gateway_request_duration_seconds_bucket", version="2", le="30.0") == len(
        hedged
    )
