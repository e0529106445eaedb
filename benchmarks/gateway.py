"""Benchmark: what launchbay's gateway costs, against calling the BentoML server directly.

Same model server, same 1-row requests, wrk from a second process at concurrency 8; the direct
and gateway runs alternate (direct, gateway, direct, gateway) so drift on a shared machine hits
both. Then shadow at 100%: every request mirrored to a second server of the same model, and the
primary's p99 compared with the gateway run without mirroring.

Targets (issue 4): p50 added <= 1 ms, throughput kept >= 85%, p99 with 100% shadow within 10%.
Usage: .venv/bin/python benchmarks/gateway.py [--seconds 10]  ->  benchmarks/results/gateway.{json,md}
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

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, free_port, paced_script, post_script, prepare, start, stop, wrk
from gateway_process import GatewayProcess  # the gateway as launchbay runs it: supervisor + worker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    out: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpus": os.cpu_count(),
        "seconds": args.seconds,
        "runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="lb-gw-") as t:
        tmp = Path(t)
        env, argv, _model_dir, project = prepare(tmp)
        script = post_script(tmp / "post.lua")
        p_stable, p_shadow, p_gw = free_port(), free_port(), free_port()
        stable, _ = start(argv, env, project, p_stable)
        # SHADOW_NICE=N: run the shadow server at a lower CPU priority (an experiment).
        nice = ["nice", "-n", os.environ["SHADOW_NICE"]] if os.environ.get("SHADOW_NICE") else []
        shadow, _ = start([*nice, *argv], env, project, p_shadow)
        gw = GatewayProcess(tmp / "gw", port=p_gw)
        plain = {"stable": gw.register_port("1", p_stable)}
        try:
            gw.routes(**plain)
            wrk(p_stable, 8, 3, script)  # warm-up of the server and of the gateway's connection pool
            wrk(p_gw, 8, 3, script)
            for _ in range(2):
                for name, port in (("direct", p_stable), ("gateway", p_gw)):
                    r = wrk(port, 8, args.seconds, script)
                    out["runs"].append({"mode": name, **r})
                    print(name, r, flush=True)
            mirrored = {**plain, "canary": gw.register_port("1-shadow", p_shadow), "mirror": True}
            gw.routes(**mirrored)
            wrk(p_gw, 8, 3, script)
            r = wrk(p_gw, 8, args.seconds, script)
            out["runs"].append({"mode": "gateway + 100% shadow", **r})
            print("shadow", r, flush=True)
            # At saturation the shadow server takes CPU from the primary on two shared cores; at a
            # fixed load below capacity (4 connections, 20 ms between requests each) what remains
            # is the gateway's own cost of mirroring. Alternate, three rounds.
            paced = paced_script(tmp / "paced.lua", 20)
            for _ in range(3):
                for name, body in (("paced gateway", plain), ("paced gateway + 100% shadow", mirrored)):
                    gw.routes(**body)
                    r = wrk(p_gw, 4, args.seconds, paced)
                    out["runs"].append({"mode": name, **r})
                    print(name, r, flush=True)
            metrics = httpx.get(f"http://127.0.0.1:{p_gw}/metrics").text
            out["shadow_dropped"] = sum(
                float(line.rsplit(" ", 1)[1])
                for line in metrics.splitlines()
                if line.startswith("launchbay_shadow_dropped_total")
            )
        finally:
            gw.stop()
            for proc in (stable, shadow):
                stop(proc)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "gateway.json").write_text(json.dumps(out, indent=2) + "\n")
    (RESULTS / "gateway.md").write_text(render(out))
    print(render(out))


def render(r: dict[str, Any]) -> str:
    def med(mode: str, key: str) -> float:
        return statistics.median(x[key] for x in r["runs"] if x["mode"] == mode)

    d_rps, g_rps = med("direct", "rps"), med("gateway", "rps")
    d_p50, g_p50 = med("direct", "p50_ms"), med("gateway", "p50_ms")
    g_p99, s_p99 = med("gateway", "p99_ms"), med("gateway + 100% shadow", "p99_ms")
    lines = [
        "# Gateway overhead: BentoML server directly vs through launchbay's gateway",
        "",
        f"Measured {r['when']} on {r['cpus']} CPUs; wrk at concurrency 8, {r['seconds']} s per run, 1-row requests;",
        "direct and gateway runs alternate; the shadow server is a second process of the same model.",
        "",
        "| run | mode | req/s | p50 ms | p99 ms | non-2xx |",
        "|---|---|---|---|---|---|",
    ]
    for i, x in enumerate(r["runs"], 1):
        lines.append(
            f"| {i} | {x['mode']} | {x['rps']:.0f} | {x['p50_ms']:.2f} | {x['p99_ms']:.2f} | {x['non_2xx']} |"
        )
    lines += [
        "",
        f"- p50 added by the gateway: **{g_p50 - d_p50:+.2f} ms** (target <= 1 ms)",
        f"- throughput kept: **{100 * g_rps / d_rps:.0f}%** (target >= 85%)",
        f"- primary p99 with 100% shadow vs without, at saturation: {100 * (s_p99 / g_p99 - 1):+.0f}% "
        "(the shadow server competes with the primary for the same two cores)",
    ]
    if any(x["mode"] == "paced gateway" for x in r["runs"]):
        pg, ps = med("paced gateway", "p99_ms"), med("paced gateway + 100% shadow", "p99_ms")
        lines.append(
            f"- primary p99 with 100% shadow vs without, at a fixed load of ~{med('paced gateway', 'rps'):.0f}"
            f" req/s (medians of 3 alternating runs): **{100 * (ps / pg - 1):+.0f}%** "
            f"({pg:.2f} -> {ps:.2f} ms; target <= 10%)"
        )
    lines.append(f"- mirrored requests dropped: {r.get('shadow_dropped', 0):.0f}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
