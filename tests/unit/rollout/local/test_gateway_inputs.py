"""Requests nobody designed for, against the gateway as a real process: paths in version labels,
stale route changes, idle and half-sent connections, huge and malformed requests. Each gets a
clear 4xx in the JSON error shape (or a closed connection), and none reaches a server that is
not launchbay's."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gateway_process import FakeModel, GatewayProcess

from launchbay import procs


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(tmp_path / "gw", None, "m", 0, 1000, "--idle-timeout", "1", "--body-timeout", "1")
    yield gw
    gw.stop()


def _raw(gw: GatewayProcess, data: bytes, wait: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", gw.port), timeout=wait) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def _json_error(raw: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"application/json" in head.lower(), head
    return status, json.loads(body)


def test_a_version_label_that_is_a_path_never_reads_a_record_outside_the_state_directory(
    gateway: GatewayProcess, models: dict, tmp_path: Path
) -> None:
    models["1"], rogue = FakeModel("1"), FakeModel("5")
    models["rogue"] = rogue
    stable = gateway.register(models["1"])
    gateway.routes(stable=stable)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    record = procs.ProcessRecord(pid=os.getpid(), port=rogue.port, log="", started_at=time.time())
    record.write(elsewhere / "evil.json")
    label = "5-bentoml/../../../elsewhere/evil"
    res = gateway._admin("PUT", stable={"version": label, "url": rogue.url})
    assert res.status_code == 400 and "is not a model version" in res.json()["error"], res.text
    # A record that is a symlink out of the state directory names no server of launchbay's either.
    (gateway.servers / "v5.json").symlink_to(elsewhere / "evil.json")
    res = gateway._admin("PUT", stable={"version": "5", "url": rogue.url})
    assert res.status_code == 403 and "no server of launchbay's" in res.json()["error"], res.text
    assert gateway.predict().headers["X-Launchbay-Version"] == "1" and rogue.hits == 0


def test_routes_derived_from_an_older_ledger_generation_are_refused(
    gateway: GatewayProcess, models: dict
) -> None:
    models["1"], models["2"] = FakeModel("1"), FakeModel("2")
    stable, canary = gateway.register(models["1"]), gateway.register(models["2"])
    assert gateway._admin("PUT", stable=stable, generation=7).status_code == 200
    stale = gateway._admin("PUT", stable=canary, generation=6)  # a writer that paused since reading
    assert stale.status_code == 409 and stale.json()["generation"] == 7
    assert "stale routes" in stale.json()["error"]
    assert gateway.state()["stable"] == stable and gateway.state()["generation"] == 7
    assert gateway._admin("PUT", stable=canary, generation=8).status_code == 200


def test_idle_and_half_sent_connections_are_closed_and_cannot_pile_up(gateway: GatewayProcess) -> None:
    idle = [socket.create_connection(("127.0.0.1", gateway.port)) for _ in range(200)]
    half = socket.create_connection(("127.0.0.1", gateway.port))
    half.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Ty")  # headers never finished
    try:
        started = time.monotonic()
        for s in [*idle, half]:
            s.settimeout(10)
            assert s.recv(1024) == b""  # closed by the gateway
        assert time.monotonic() - started < 6  # the idle timeout (1 s), not the client's patience
    finally:
        for s in [*idle, half]:
            s.close()
    assert gateway.predict().status_code == 503  # and it still answers (nothing deployed)


def test_a_body_that_never_arrives_is_a_408_in_the_json_shape(gateway: GatewayProcess, models: dict) -> None:
    models["1"] = FakeModel("1")
    gateway.routes(stable=gateway.register(models["1"]))
    raw = _raw(gateway, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        b"Content-Length: 100\r\n\r\n{\"row\":")  # fmt: skip
    status, body = _json_error(raw)
    assert status == 408 and "did not arrive within 1s" in str(body["error"])
    assert models["1"].hits == 0


def test_a_huge_body_and_a_malformed_request_get_the_json_error_shape(
    gateway: GatewayProcess, models: dict
) -> None:
    models["1"] = FakeModel("1")
    gateway.routes(stable=gateway.register(models["1"]))
    huge = b"{" + b" " * (20 * 1024 * 1024) + b"}"
    big = gateway.predict(content=huge, headers={"Content-Type": "application/json"})
    assert big.status_code == 413 and "larger than 16 MB" in big.json()["error"]
    status, body = _json_error(_raw(gateway, b"GARBAGE\x00 / HTTP/9\r\n\r\n"))
    assert status == 400 and str(body["error"]).startswith("malformed request")
    assert gateway.metric("launchbay_gateway_requests_total", version="1", code="5xx") == 0
    assert models["1"].hits == 0


def test_a_row_is_compared_once_per_window_and_memory_is_bounded() -> None:
    from launchbay.rollout.local.repeats import Seen, key, rows_of

    now = [0.0]
    seen = Seen(window=10, capacity=3, clock=lambda: now[0])
    pair = ("1", "2")
    assert seen.first(key(pair, {"a": 1, "b": 2}))
    assert not seen.first(key(pair, {"b": 2, "a": 1}))  # the same row, keys in another order
    assert seen.first(key(("1", "3"), {"a": 1, "b": 2}))  # another pair compares it afresh
    now[0] = 11
    assert seen.first(key(pair, {"a": 1, "b": 2}))  # the window passed
    for i in range(10):
        seen.first(key(pair, {"a": i}))
    assert len(seen) <= 3
    assert rows_of(b'{"rows": [{"a": 1}, {"a": 2}]}') == [{"a": 1}, {"a": 2}]
    assert rows_of(b'{"row": {"a": 1}}') == [{"a": 1}]
    assert rows_of(b"not json") is None and rows_of(b"[1]") is None
