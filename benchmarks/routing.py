"""Benchmark: what pinning and sticky users cost at launchbay's gateway.

One model server as stable and a second process of it as the candidate at 20%; wrk from a second
process at concurrency 8, 1-row requests. Each mode alternates with the others (two rounds):
the server called directly (the ceiling), the gateway's weighted draw (the baseline: what every
request cost before), a tester's pin header, a user-id header (sticky: header, a new user per
request, so every one is a table insert), a sticky cookie (sticky: cookie, a returning user).

Usage: .venv/bin/python benchmarks/routing.py [--seconds 8]  ->  benchmarks/results/routing.{json,md}
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, free_port, post_script, prepare, start, stop, wrk
from gateway_process import GatewayProcess

from launchbay.rollout.local.choice import Routing


def _script(path: Path, extra: str) -> Path:
    post_script(path)
    with path.open("a") as f:
        f.write(extra)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args()
    out: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "cpus": os.cpu_count(),
                           "seconds": args.seconds, "runs": []}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="lb-routing-") as t:
        tmp = Path(t)
        env, argv, _model_dir, project = prepare(tmp)
        plain = post_script(tmp / "post.lua")
        pinned = _script(tmp / "pin.lua", "wrk.headers['X-Launchbay-Pin'] = 'candidate'\n")
        users = _script(tmp / "users.lua", "request = function()\n  wrk.headers['X-User-Id'] = "
                        "tostring(math.random(1, 1000000000))\n  return wrk.format()\nend\n")  # fmt: skip
        cookie = _script(tmp / "cookie.lua", "wrk.headers['Cookie'] = 'launchbay-version=v1.c2'\n")
        p_stable, p_canary = free_port(), free_port()
        stable, _ = start(argv, env, project, p_stable)
        canary, _ = start(argv, env, project, p_canary)
        by_header = GatewayProcess(tmp / "gw-h", None, "m", 0, 1000, "--routing",
                                   Routing(sticky="header", sticky_header="X-User-Id").to_json())  # fmt: skip
        by_cookie = GatewayProcess(tmp / "gw-c", None, "m", 0, 1000, "--routing", Routing(sticky="cookie").to_json())
        try:
            for gw in (by_header, by_cookie):
                gw.routes(stable=gw.register_port("1", p_stable), canary=gw.register_port("2", p_canary),
                          canary_weight=20)  # fmt: skip
            modes = [
                ("direct", p_stable, plain),
                ("gateway, weighted", by_header.port, plain),
                ("gateway, pinned", by_header.port, pinned),
                ("gateway, sticky header (new user each)", by_header.port, users),
                ("gateway, sticky cookie (returning user)", by_cookie.port, cookie),
            ]
            for _, port, script in modes:
                wrk(port, 8, 2, script)  # warm-up
            for _ in range(2):
                for name, port, script in modes:
                    r = wrk(port, 8, args.seconds, script)
                    out["runs"].append({"mode": name, **r})
                    print(name, r, flush=True)
        finally:
            for gw in (by_header, by_cookie):
                gw.stop()
            for proc in (stable, canary):
                stop(proc)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "routing.json").write_text(json.dumps(out, indent=2) + "\n")
    (RESULTS / "routing.md").write_text(render(out))
    print(render(out))


def render(r: dict[str, Any]) -> str:
    def med(mode: str, key: str) -> float:
        return statistics.median(x[key] for x in r["runs"] if x["mode"] == mode)

    modes = list(dict.fromkeys(x["mode"] for x in r["runs"]))
    base_rps, base_p50 = med("gateway, weighted", "rps"), med("gateway, weighted", "p50_ms")
    top_rps = med("direct", "rps")
    lines = [
        "# Pinning and sticky users at the gateway",
        "",
        f"Measured {r['when']} on {r['cpus']} CPUs; wrk at concurrency 8, {r['seconds']} s per run, two",
        "alternating rounds (medians); 20% to the candidate (a second server of the same model).",
        "",
        "| mode | req/s | p50 ms | p99 ms | vs weighted (req/s) | p50 added vs weighted | vs direct (req/s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in modes:
        rps, p50, p99 = med(m, "rps"), med(m, "p50_ms"), med(m, "p99_ms")
        lines.append(f"| {m} | {rps:.0f} | {p50:.2f} | {p99:.2f} | {100 * rps / base_rps:.0f}% | "
                     f"{p50 - base_p50:+.2f} ms | {100 * rps / top_rps:.0f}% |")  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
