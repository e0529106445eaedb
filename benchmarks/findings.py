"""Benchmark: issue 11's seven findings, reproduced against real processes -- before and after.

Each finding is tried the way the independent tester tried it, from outside the processes, and
what a user or an attacker would see is recorded:

  1. a route change sent to the gateway's client port (a rogue backend), and its effect;
  2. the release's author approving as someone else;
  3. the gateway SIGKILLed mid-canary under 40 req/s: time until clients are answered again, the
     port, failed client requests, whether the rollout still reaches approval;
  4. two releases of one model started at the same moment;
  5. processes left after `launchbay down`; secrets in a scale-to-zero spawn spec; state file modes;
  6. multipart/form-data requests (2 req/s) against a healthy candidate in canary;
  7. the slower of two simultaneous approvals; one analysis against a hung (SIGSTOPped)
     Prometheus; an on-call rollback that has to restart a dead gateway.

    .venv/bin/python benchmarks/findings.py [--before REF]

With --before REF, the same scenarios also run against that commit (a git worktree, its code put
first on PYTHONPATH, the same installed dependencies). Writes benchmarks/results/findings.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml
from common import RESULTS, ROOT

sys.path.insert(0, str(ROOT / "tests"))
import people
from projects import FAST_ROLLOUT, write_project

from launchbay.checks.signature import generate_keypair

MODEL = "fraud-detector"


@dataclass
class Tree:
    """A launchbay to try: the current one, or an older commit's."""

    name: str
    root: Path
    before: bool

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("MLFLOW_TRACKING_URI", None)
        if self.before:  # its packages first: `launchbay`, `rollout`, `pipelines`, ... of that commit
            env["PYTHONPATH"] = str(self.root)
        return env


@dataclass
class Bay:
    tree: Tree
    project: Path
    home: Path
    env: dict[str, str]
    found: dict[str, Any] = field(default_factory=dict)

    def lb(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "launchbay", *args], cwd=self.project, env={**self.env, **(env or {})},
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "launchbay", *args], cwd=self.project, env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip

    def gateway(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads((self.home / "local" / MODEL / "gateway.json").read_text())
        return doc

    def routes(self) -> dict[str, Any]:
        gw = self.gateway()
        if self.tree.before:
            doc: dict[str, Any] = httpx.get(
                f"http://127.0.0.1:{gw['port']}/_launchbay/routes", timeout=5
            ).json()
            return doc
        token = (self.home / "local" / MODEL / "gateway.token").read_text()
        return dict(
            httpx.get(
                f"http://127.0.0.1:{gw['admin_port']}/routes",
                headers={"Authorization": f"Bearer {token}"},
                timeout=5,
            ).json()
        )

    def ledger(self, sql: str) -> list[tuple[Any, ...]]:
        import sqlite3

        with sqlite3.connect(self.home / "ledger.db") as conn:
            return conn.execute(sql).fetchall()

    def latest(self) -> tuple[int, str]:
        return self.ledger("SELECT id, phase FROM releases ORDER BY id DESC LIMIT 1")[0]  # type: ignore[return-value]

    def wait_phase(self, phases: set[str], timeout: float = 180) -> tuple[int, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rid, phase = self.latest()
            if phase in phases:
                return rid, phase
            time.sleep(0.2)
        raise RuntimeError(f"{phases} not reached; latest {self.latest()}")


class Client:
    """Steady 40 req/s through the gateway, every answer recorded with its time."""

    def __init__(self, url: str, row: dict[str, Any], rate: float = 40) -> None:
        self.url, self.row, self.rate = url, row, rate
        self.answers: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(4)]

    def __enter__(self) -> Client:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=15)

    def _run(self, i: int) -> None:
        period = 4 / self.rate
        with httpx.Client(timeout=10) as c:
            while not self._stop.wait(period):
                try:
                    status = c.post(self.url + "/predict", json={"row": self.row}).status_code
                except httpx.HTTPError:
                    status = 0
                self.answers.append((time.time(), status))

    def failed(self, since: float = 0.0) -> list[float]:
        return [t for t, s in self.answers if t >= since and not 200 <= s < 300]


def setup(tree: Tree, tmp: Path) -> Bay:
    project, home = tmp / "project", tmp / "home"
    generate_keypair(home / "keys")
    rollout: dict[str, Any] = dict(FAST_ROLLOUT)
    if tree.before:
        rollout["approval"] = {"required": True, "approvers": ["alice", "bob"]}
    else:
        rollout["approval"] = {"required": True, "approvers": people.approvers("alice", "bob")}
    overrides = {"rollout": rollout, "serving.min_instances": 0, "serving.idle_timeout": "1h"}
    config = write_project(project, rows=5000, overrides=overrides)
    if tree.before:  # that commit's example: its train function inside launchbay's old packages
        doc = yaml.safe_load(config.read_text())
        doc["model"]["train"] = "pipelines.example.fraud:train"
        config.write_text(yaml.safe_dump(doc, sort_keys=False))
    env = {
        **tree.env(), "LAUNCHBAY_HOME": str(home), "COLUMNS": "200", "LAUNCHBAY_USER": "ds",
        "XDG_CONFIG_HOME": str(people.CONFIG_HOME),
        # Secrets a CI job would have in its environment: they must not travel to model servers.
        "LAUNCHBAY_SIGNING_KEY": str(home / "keys" / "signing-key.pem"),
        "LAUNCHBAY_LEDGER_URL": f"sqlite:///{home / 'ledger.db'}",
    }  # fmt: skip
    bay = Bay(tree, project, home, env)
    for args in (("run",), ("run", "--no-rollout"), ("run", "--no-rollout")):  # v1 serves; v2, v3 wait
        res = bay.lb(*args)
        if res.returncode != 0:
            raise RuntimeError(
                f"{tree.name}: launchbay {' '.join(args)} failed:\n{res.stdout[-3000:]}{res.stderr[-3000:]}"
            )
    from launchbay.rollout.local.clients import sample_rows

    bay.found["row"] = sample_rows(
        str(project / "data" / "transactions.parquet"), list(_features(config)), n=1
    )[0]
    return bay


def _features(config: Path) -> list[str]:
    return list(yaml.safe_load(config.read_text())["data"]["features"])


def rogue_server() -> tuple[subprocess.Popen[bytes], int]:
    port = _free()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "tiny_model.py"), str(port), "rogue"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(100):
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5)
            break
        except httpx.HTTPError:
            time.sleep(0.05)
    return proc, port


def _free() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def f1_route_hijack(bay: Bay) -> dict[str, Any]:
    proc, port = rogue_server()
    try:
        gw = bay.gateway()
        forged = {"stable": {"version": "1", "url": f"http://127.0.0.1:{port}"}}
        client_port = httpx.put(f"http://127.0.0.1:{gw['port']}/_launchbay/routes", json=forged, timeout=5)
        answer = httpx.post(
            f"http://127.0.0.1:{gw['port']}/predict", json={"row": bay.found["row"]}, timeout=5
        )
        out = {
            "client_port_put_status": client_port.status_code,
            "next_request_answered_by_rogue": '"rogue"' in answer.text,
            "label_on_that_answer": answer.headers.get("X-Launchbay-Version"),
        }
        if not bay.tree.before:
            token = (bay.home / "local" / MODEL / "gateway.token").read_text()
            admin = f"http://127.0.0.1:{gw['admin_port']}/routes"
            out["admin_put_without_token"] = httpx.put(admin, json=forged, timeout=5).status_code
            out["admin_put_with_token_rogue_backend"] = httpx.put(
                admin, json=forged, headers={"Authorization": f"Bearer {token}"}, timeout=5
            ).status_code
        if out["next_request_answered_by_rogue"]:  # put things back for the next scenarios
            back = {
                "stable": {
                    "version": "1",
                    "url": f"http://127.0.0.1:{json.loads((bay.home / 'local' / MODEL / 'servers' / 'v1.json').read_text())['port']}",
                }
            }
            httpx.put(f"http://127.0.0.1:{gw['port']}/_launchbay/routes", json=back, timeout=5)
        return out
    finally:
        proc.kill()


def f4_two_releases(bay: Bay) -> dict[str, Any]:
    procs_ = [bay.spawn("release", f"{MODEL}@{v}", "--detach") for v in ("2", "3")]
    outs = [(p.wait(timeout=120), (p.stdout.read() if p.stdout else "")) for p in procs_]
    live = bay.ledger(
        "SELECT id FROM releases WHERE phase IN ('pending','verified','shadow','canary','awaiting-approval')"
    )
    for (rid,) in live:
        bay.lb("abort", str(rid), "--reason", "benchmark")
    return {
        "exit_codes": sorted(code for code, _ in outs),
        "releases_created": len(live),
        "loser_said": next((o.strip().splitlines()[-1] for c, o in outs if c != 0), ""),
    }


def f5_files(bay: Bay) -> dict[str, Any]:
    modes = {
        name: oct((bay.home / name).stat().st_mode & 0o777)
        for name in ("ledger.db", "mlflow.db", f"local/{MODEL}/routes.json")
        if (bay.home / name).exists()
    }
    spec = bay.home / "local" / MODEL / "servers" / "spawn-v1.json"
    secrets: list[str] = []
    if spec.exists():
        env = json.loads(spec.read_text())["env"]
        secrets = sorted(k for k in env if k in ("LAUNCHBAY_SIGNING_KEY", "LAUNCHBAY_LEDGER_URL"))
    return {
        "modes": modes,
        "state_dir": oct(bay.home.stat().st_mode & 0o777),
        "secrets_in_spawn_spec": secrets,
    }


def _release_with_clients(bay: Bay, version: str) -> tuple[subprocess.Popen[str], Client]:
    client = Client(f"http://127.0.0.1:{bay.gateway()['port']}", bay.found["row"]).__enter__()
    return bay.spawn("release", f"{MODEL}@{version}"), client


def f6_multipart(bay: Bay) -> dict[str, Any]:
    proc, client = _release_with_clients(bay, "2")
    try:
        bay.wait_phase({"canary", "rolled-back", "failed"})
        url = f"http://127.0.0.1:{bay.gateway()['port']}/predict"
        statuses = []
        for _ in range(30):
            r = httpx.post(url, content=json.dumps({"row": bay.found["row"]}),
                           headers={"Content-Type": "multipart/form-data"}, timeout=10)  # fmt: skip
            statuses.append(r.status_code)
            time.sleep(0.5)
        rid, phase = bay.wait_phase({"awaiting-approval", "rolled-back", "failed"})
        reason = bay.ledger(f"SELECT reason FROM events WHERE release_id = {rid} ORDER BY id DESC LIMIT 1")[
            0
        ][0]
    finally:
        client.__exit__()
        proc.wait(timeout=300)
    if phase == "awaiting-approval":
        bay.lb("abort", str(rid), "--reason", "benchmark")
    return {
        "multipart_statuses": sorted(set(statuses)),
        "healthy_candidate_ended": phase,
        "reason": reason[:160],
    }


def f3_gateway_killed(bay: Bay, part: str) -> dict[str, Any]:
    proc, client = _release_with_clients(bay, "3")
    try:
        bay.wait_phase({"canary"})
        before = bay.gateway()
        pid = before["supervisor_pid"] if part == "supervisor" and not bay.tree.before else before["pid"]
        killed = time.time()
        os.kill(pid, signal.SIGKILL)
        back = None
        with httpx.Client(timeout=2) as c:
            while time.time() - killed < 60:
                try:
                    port = before["port"]  # where clients are: a gateway elsewhere does not serve them
                    if (
                        c.post(f"http://127.0.0.1:{port}/predict", json={"row": bay.found["row"]}).status_code
                        == 200
                    ):
                        back = time.time() - killed
                        break
                except (httpx.HTTPError, OSError):
                    pass
                time.sleep(0.02)
        try:
            _, phase = bay.wait_phase({"awaiting-approval", "rolled-back", "failed", "aborted"}, timeout=90)
        except RuntimeError:
            phase = f"still {bay.latest()[1]} 90 s later"
    finally:
        client.__exit__()
    failed = client.failed(since=killed)
    bay.found["release_proc"] = proc
    return {
        "killed": part,
        "clients_answered_on_their_port_after_s": None if back is None else round(back, 2),
        "gateway_port_now_the_same": bay.gateway()["port"] == before["port"],
        "failed_client_requests": len(failed),
        "last_failure_after_kill_s": round(max(failed) - killed, 2) if failed else None,
        "release_reached": phase,
    }


def _awaiting(bay: Bay, version: str) -> tuple[int, str]:
    """A release of `version` waiting for approval (any live one is aborted first)."""
    for (rid,) in bay.ledger(
        "SELECT id FROM releases WHERE phase IN ('pending','verified','shadow','canary','awaiting-approval')"
    ):
        bay.lb("abort", str(rid), "--reason", "benchmark")
    old = bay.found.pop("release_proc", None)
    if old is not None and old.poll() is None:
        old.kill()
    proc, client = _release_with_clients(bay, version)
    try:
        return bay.wait_phase({"awaiting-approval", "rolled-back", "failed"})
    finally:
        client.__exit__()
        proc.wait(timeout=120)


def f2_forged_approval(bay: Bay) -> dict[str, Any]:
    rid, phase = _awaiting(bay, "2")
    if phase != "awaiting-approval":
        return {"skipped": f"the release ended {phase}"}
    stranger = bay.project / "stranger"  # a machine that holds none of bob's keys
    stranger.mkdir(exist_ok=True)
    res = bay.lb("approve", str(rid), "--as", "bob", env={"XDG_CONFIG_HOME": str(stranger)})
    actor, action = bay.ledger(
        f"SELECT actor, action FROM events WHERE release_id = {rid} ORDER BY id DESC LIMIT 1"
    )[0]
    return {
        "author_as_bob_exit": res.returncode,
        "ledger_recorded": f"{actor} {action}",
        "phase_after": bay.latest()[1],
        "said": (res.stdout + res.stderr).strip().splitlines()[-1][:200]
        if (res.stdout + res.stderr).strip()
        else "",
    }


def f7_racing_approvals(bay: Bay) -> dict[str, Any]:
    rid, phase = _awaiting(bay, "3")
    if phase != "awaiting-approval":
        return {"skipped": f"the release ended {phase}"}
    racers = [bay.spawn("approve", str(rid), "--as", who) for who in ("alice", "bob")]
    outs = [(p.wait(timeout=120), p.stdout.read() if p.stdout else "") for p in racers]
    loser = next(((c, o) for c, o in outs if c != 0), None)
    return {
        "exit_codes": sorted(c for c, _ in outs),
        "loser_traceback": bool(loser and "Traceback" in loser[1]),
        "loser_said": loser[1].strip().splitlines()[-1][:200] if loser else "",
    }


def f7_rollback_restarts_gateway(bay: Bay) -> dict[str, Any]:
    gw = bay.gateway()
    os.kill(gw.get("supervisor_pid", gw["pid"]), signal.SIGKILL)  # the whole gateway, supervisor and all
    time.sleep(0.5)
    started = time.monotonic()
    res = bay.lb("rollback", MODEL, "--as", "oncall", "--reason", "benchmark")
    took = time.monotonic() - started
    rid = bay.latest()[0]
    actions = [a for (a,) in bay.ledger(f"SELECT action FROM events WHERE release_id = {rid} ORDER BY id")]
    return {
        "exit": res.returncode,
        "took_s": round(took, 2),
        "gateway_restart_recorded": "gateway-restarted" in actions,
        "same_port": bay.gateway()["port"] == gw["port"],
    }


HUNG = """
import json, sys, time
if sys.argv[2] == "after":
    from launchbay.rollout.metrics.prometheus import PrometheusProvider
    from launchbay.rollout.metrics.queries import measure_canary
    def analysis(p): measure_canary(p, "2", "1", 4, deadline=1.0)
else:  # the layout before one namespace (the editable install would resolve new names: no trying)
    from rollout.metrics.prometheus import PrometheusProvider
    from rollout.metrics.queries import measure_version
    def analysis(p): measure_version(p, "2", "primary", 4); measure_version(p, "1", "primary", 4)
p = PrometheusProvider(sys.argv[1])
t = time.monotonic()
analysis(p)
print(json.dumps({"one_analysis_s": round(time.monotonic() - t, 2)}))
"""


def f7_hung_prometheus(bay: Bay) -> dict[str, Any]:
    # A Prometheus that accepts connections and never answers (what SIGSTOP does to it): a socket
    # listening with nobody accepting -- the kernel completes the handshake, no reply ever comes.
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(64)
        res = subprocess.run(
            [sys.executable, "-c", HUNG, f"http://127.0.0.1:{hung.getsockname()[1]}", bay.tree.name],
            env=bay.env,
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
    return json.loads(res.stdout) if res.returncode == 0 else {"error": res.stderr[-500:]}


def f5_down(bay: Bay) -> dict[str, Any]:
    res = bay.lb("down")
    time.sleep(1)
    home = str(bay.home)
    left = []
    for p in psutil.process_iter(["pid", "cmdline", "environ"]):
        try:
            env = p.info.get("environ") or {}
            mine = (
                env.get("LAUNCHBAY_HOME") == home
                or str(env.get("LAUNCHBAY_OWNER", "")).startswith(home)
                or home in " ".join(p.info.get("cmdline") or [])
            )
            if mine and p.pid != os.getpid():
                left.append(p)
        except psutil.Error:
            continue
    listening = [p.pid for p in left if any(c.status == psutil.CONN_LISTEN for c in p.net_connections())]
    for p in left:
        p.kill()
    return {"down_exit": res.returncode, "processes_left": len(left), "listening_left": len(listening)}


def run(tree: Tree) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"lb-findings-{tree.name}-") as t:
        bay = setup(tree, Path(t))
        out: dict[str, Any] = {}
        try:
            for name, fn in (
                ("1 route change on the client port", f1_route_hijack),
                ("5 state file modes, spawn spec", f5_files),
                ("4 two releases at once", f4_two_releases),
                ("6 multipart requests in canary", f6_multipart),
                ("3 gateway SIGKILL mid-canary", lambda b: f3_gateway_killed(b, "worker")),
                ("7a two approvals at once", f7_racing_approvals),
                ("2 author approves as bob", f2_forged_approval),
                ("7b one analysis, Prometheus hung", f7_hung_prometheus),
                ("7c rollback restarting a dead gateway", f7_rollback_restarts_gateway),
                ("5 after launchbay down", f5_down),
            ):
                try:
                    out[name] = fn(bay)
                except Exception as exc:  # a finding that cannot even be tried is a finding too
                    out[name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
                print(f"{tree.name}: {name}: {out[name]}", flush=True)
        finally:
            proc = bay.found.get("release_proc")
            if proc is not None and proc.poll() is None:
                proc.kill()
            bay.lb("down")
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="a commit to compare with (e.g. the one before issue 11)")
    args = parser.parse_args()
    results: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "cpus": os.cpu_count()}
    worktree = None
    try:
        if args.before:
            worktree = Path(tempfile.mkdtemp(prefix="lb-before-"))
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), args.before],
                           check=True, capture_output=True)  # fmt: skip
            results["before"] = {"ref": args.before, **run(Tree("before", worktree, before=True))}
        results["after"] = run(Tree("after", ROOT, before=False))
    finally:
        if worktree is not None:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)], check=False
            )
            shutil.rmtree(worktree, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "findings.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (RESULTS / "findings.md").write_text(render(results))
    print(render(results))


def render(results: dict[str, Any]) -> str:
    lines = [
        "# Issue 11's findings, reproduced before and after",
        "",
        f"{results['when']}, {results['cpus']} CPUs; `benchmarks/findings.py"
        + (f" --before {results['before']['ref']}`" if "before" in results else "`")
        + ". Real processes: BentoML servers, the gateway, Prometheus, the CLI; 40 req/s of clients.",
        "",
        "| finding | before | after |",
        "|---|---|---|",
    ]
    after = results["after"]
    before = results.get("before", {})
    for name in after:
        lines.append(f"| {name} | `{json.dumps(before.get(name, '-'))}` | `{json.dumps(after[name])}` |")
    if note := results.get("note"):
        lines += ["", f"Note: {note}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
