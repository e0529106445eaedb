"""The gateway's replay sample: bounded, uniform, cleaned of the fields people asked to drop or
hash, with the busiest second it saw; and the replay that sends it to a candidate, open loop."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from launchbay import procs
from launchbay.checks.verdict import Verdict
from launchbay.config.rollout import ReplaySection, SloSection
from launchbay.rollout import replay
from launchbay.rollout.local.capture import Recorder, read
from launchbay.serving.request_sample import Capture


def test_the_sample_is_bounded_uniform_and_cleaned(tmp_path: Path) -> None:
    rec = Recorder(Capture(size=100, drop=("email",), hash=("user",)), tmp_path / "capture.json")
    for i in range(5000):
        body = {"row": {"x": i, "email": f"u{i}@example.com", "user": f"u{i}"}}
        rec.add(json.dumps(body).encode(), now=1000 + i // 50)  # 50 requests a second
    rec.add(b"not json", now=2000)
    rec.flush()
    got = read(tmp_path / "capture.json")
    assert got is not None and len(got.bodies) == 100 and got.seen == 5001 and got.peak_rps == 50
    rows = [json.loads(b)["row"] for b in got.bodies]
    assert all("email" not in r and r["user"].startswith("sha256:") for r in rows)
    assert not any(r["user"] == f"u{r['x']}" for r in rows)
    # Uniform: the sample is not just the first (or last) requests seen.
    halves = Counter(r["x"] < 2500 for r in rows)
    assert 30 <= halves[True] <= 70, halves
    batch = Recorder(Capture(size=5), tmp_path / "b.json")
    batch.add(json.dumps({"rows": [{"x": 1}, "odd"]}).encode())
    batch.flush()
    kept = read(tmp_path / "b.json")
    assert kept is not None and json.loads(kept.bodies[0]) == {"rows": [{"x": 1}, "odd"]}


def test_nothing_captured_reads_as_none(tmp_path: Path) -> None:
    assert read(tmp_path / "missing.json") is None
    (tmp_path / "broken.json").write_text("{")
    assert read(tmp_path / "broken.json") is None


class Server:
    """A model server on a free port answering after `seconds`, one request at a time or all at once."""

    def __init__(self, seconds: float, one_at_a_time: bool, status: int = 200) -> None:
        self.port = procs.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        lock = asyncio.Lock()

        async def predict(request: web.Request) -> web.Response:
            await request.read()
            if one_at_a_time:
                async with lock:
                    await asyncio.sleep(seconds)
            else:
                await asyncio.sleep(seconds)
            return web.json_response({"predictions": [0]}, status=status)

        app = web.Application()
        app.router.add_post("/predict", predict)
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", self.port).start())
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        assert not self.thread.is_alive()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    made: list[Server] = []
    yield made
    for s in made:
        s.stop()


BODIES = [json.dumps({"row": {"x": i}}) for i in range(50)]
SECTION = ReplaySection(burst=4, duration=3.0, min_rate=5)
SLO = SloSection(p95_latency_ms=200, max_error_rate=0.01)


def test_a_server_that_queues_under_the_burst_fails_it_and_one_that_keeps_up_passes(
    servers: list[Server],
) -> None:
    fragile = Server(0.02, one_at_a_time=True)  # 50 answers a second at most
    roomy = Server(0.02, one_at_a_time=False)
    servers += [fragile, roomy]
    peak = 20  # the burst: 80 a second
    started = time.monotonic()
    failed = replay.judge(replay.replay(fragile.url, BODIES, replay.plan(SECTION, peak), 2.0), SLO, peak)
    assert failed.verdict is Verdict.FAIL and failed.reason.startswith("burst leg at 80 req/s"), failed.reason
    legs = {leg.name: leg for leg in failed.legs}
    assert legs["peak"].rate == 20 and legs["peak"].sent == 20  # one second at the peak
    assert legs["burst"].sent == 160 and (legs["peak"].p95_ms() or 0) < 200
    passed = replay.judge(replay.replay(roomy.url, BODIES, replay.plan(SECTION, peak), 2.0), SLO, peak)
    assert passed.verdict is Verdict.PASS and "4.0x the recorded peak" in passed.reason
    assert time.monotonic() - started < 15  # open loop: the schedule, not the answers, sets the pace


def test_errors_fail_the_replay_and_rejected_requests_are_never_the_candidates(servers: list[Server]) -> None:
    broken, picky = Server(0.0, False, status=500), Server(0.0, False, status=422)
    servers += [broken, picky]
    section = ReplaySection(burst=2, duration=1.5, min_rate=20)
    errors = replay.judge(replay.replay(broken.url, BODIES, replay.plan(section, 1), 2.0), SLO, 1)
    assert errors.verdict is Verdict.FAIL and "error rate 100.0%" in errors.reason
    rejected = replay.judge(replay.replay(picky.url, BODIES, replay.plan(section, 1), 2.0), SLO, 1)
    assert rejected.verdict is Verdict.INCONCLUSIVE and "rejected as replayed" in rejected.reason
