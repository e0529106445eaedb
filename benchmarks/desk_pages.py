"""Benchmark: how fast the release managers' page answers, from a second process.

Against a project that has releases in its ledger (default: the example after `make run`),
`launchbay ui --port 0 --json` is started in its own process and each page is asked N times in
turn by this process (sequential requests, a person's browser polling):

  * `/` (the releases), `/releases/ID` (the whole page: ledger, gate reports, Prometheus range
    queries of every timeline, SVG), `/releases/ID/live` (what the page polls every 1.5 s),
    `/api/releases/ID` (the same as JSON);
  * baseline: `launchbay status --json` in a fresh process -- what a release manager ran before
    the page existed, for less evidence (no timelines, no gate reports);
  * ceiling: the same release page, rendered once, served as a constant by a bare Starlette app
    on uvicorn (the framework and HTTP cost alone, none of the gathering).

    .venv/bin/python benchmarks/desk_pages.py [--config examples/fraud-detector/launchbay.yaml] [--runs 30]

Writes benchmarks/results/desk_pages.{json,md}. Goal: every page under 300 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

CEILING_APP = textwrap.dedent(
    """
    import sys, uvicorn
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route
    html = open(sys.argv[1]).read()
    async def page(request): return HTMLResponse(html)
    uvicorn.run(Starlette(routes=[Route("/", page)]), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
    """
)


def _start_ui(config: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "launchbay", "ui", "--port", "0", "--json", "--config", str(config)],
        cwd=config.parent, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if select.select([proc.stdout], [], [], 0.5)[0]:
            line = proc.stdout.readline()
            if line.startswith("{"):
                return proc, json.loads(line)["url"]
    proc.kill()
    raise SystemExit("launchbay ui did not start")


def _times(client: httpx.Client, url: str, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        res = client.get(url)
        out.append((time.perf_counter() - started) * 1000)
        assert res.status_code == 200, (url, res.status_code)
    return out


def _row(name: str, ms: list[float]) -> dict[str, Any]:
    ordered = sorted(ms)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"what": name, "median_ms": round(statistics.median(ms), 1), "p95_ms": round(p95, 1),
            "max_ms": round(max(ms), 1), "runs": len(ms)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "examples" / "fraud-detector" / "launchbay.yaml")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    config = args.config.resolve()
    proc, url = _start_ui(config)
    rows: list[dict[str, Any]] = []
    try:
        base, token = url.split("/?token=")
        with httpx.Client(timeout=30, cookies={"launchbay_ui": token}) as client:
            releases = client.get(f"{base}/").text
            rid = releases.split('data-release="', 1)[1].split('"', 1)[0]
            for path in ("/", f"/releases/{rid}", f"/releases/{rid}/live", f"/api/releases/{rid}"):
                _times(client, base + path, 3)  # warm: templates compiled, reports cached
                rows.append(_row(f"page {path}", _times(client, base + path, args.runs)))
            page = client.get(f"{base}/releases/{rid}").text
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    status = []
    for _ in range(max(3, args.runs // 10)):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "launchbay", "status", "--json", "--config", str(config)],
                       cwd=config.parent, capture_output=True, check=True)  # fmt: skip
        status.append((time.perf_counter() - started) * 1000)
    rows.append(_row("baseline: `launchbay status --json` (fresh process)", status))
    html = RESULTS / ".desk-page.html"
    html.write_text(page)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bare = subprocess.Popen([sys.executable, "-c", CEILING_APP, str(html), str(port)], start_new_session=True)
    try:
        with httpx.Client(timeout=10) as client:
            for _ in range(100):
                try:
                    client.get(f"http://127.0.0.1:{port}/")
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            _times(client, f"http://127.0.0.1:{port}/", 3)
            rows.append(_row("ceiling: the same page as a constant (bare Starlette)", _times(client, f"http://127.0.0.1:{port}/", args.runs)))
    finally:
        os.killpg(bare.pid, signal.SIGTERM)
        bare.wait(timeout=20)
        html.unlink(missing_ok=True)
    by = {r["what"]: r for r in rows}
    full = by[f"page /releases/{rid}"]["median_ms"]
    ceiling = by["ceiling: the same page as a constant (bare Starlette)"]["median_ms"]
    baseline = by["baseline: `launchbay status --json` (fresh process)"]["median_ms"]
    doc = {"measured_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "cpus": os.cpu_count(),
           "release": rid, "page_bytes": len(page), "rows": rows,
           "ratio_vs_baseline": round(full / baseline, 3), "ratio_vs_ceiling": round(full / ceiling, 1)}  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "desk_pages.json").write_text(json.dumps(doc, indent=2) + "\n")
    lines = [
        "# The release managers' page: answer times from a second process", "",
        f"Measured {doc['measured_at']} on {doc['cpus']} CPUs against {config.parent.name}'s release #{rid} "
        f"(page {len(page) / 1024:.0f} KiB), {args.runs} sequential requests each.", "",
        "| what | median ms | p95 ms | max ms |", "|---|---|---|---|",
        *[f"| {r['what']} | {r['median_ms']} | {r['p95_ms']} | {r['max_ms']} |" for r in rows], "",
        f"The whole release page takes {doc['ratio_vs_baseline']}x the baseline's time (`status --json`, less "
        f"evidence) and {doc['ratio_vs_ceiling']}x the ceiling's (the same bytes with nothing gathered); "
        "goal: every page under 300 ms.", "",
    ]  # fmt: skip
    (RESULTS / "desk_pages.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
