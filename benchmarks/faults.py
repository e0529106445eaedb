"""Benchmark: issue 28's findings, reproduced from outside the processes -- before and after.

Each finding is tried the way the independent tester tried it, with steady clients (50 req/s)
recording every answer, and what users and on-call would see is recorded:

  F1 approve paused between recording "promoted" and acting on it, a rollback run meanwhile;
  F2 the controller killed between recording a rollback and changing the routes (a hung canary);
  F3 the ledger made unwritable (chattr +i) during a canary;
  F4 the gateway's supervisor SIGKILLed with nothing else of launchbay's running;
  F5 the previous stable after its grace period, and when another release starts within it;
  F6 audit after the last event is deleted, and after an edit with the chain recomputed;
  F7 a route whose version label is a path to a record outside the state directory;
  F8 1,000 idle connections, a truncated body, a 20 MB body; who a refused approval records.

    .venv/bin/python benchmarks/faults.py [--before REF]

Before: the pause and the kill are injected by patching the old code's acting function (it has
no fault points); after: `LAUNCHBAY_FAULTS`. Writes benchmarks/results/faults.{json,md}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
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
RATE = 50.0
GRACE = 8.0

_PATCH = """
import os, signal, sys
what, action = sys.argv[1], sys.argv[2]
del sys.argv[1:3]
import launchbay.rollout.operations as ops
import launchbay.rollout.decisions as decisions
original = getattr(ops, what)
def hooked(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGSTOP if action == "stop" else signal.SIGKILL)
    return original(*args, **kwargs)
setattr(ops, what, hooked)
if hasattr(decisions, what):
    setattr(decisions, what, hooked)
from launchbay.cli.main import main
sys.argv[0] = "launchbay"
main()
"""
"""The old code's fault injection: stop or die where it would act on a decision it recorded."""


@dataclass
class Tree:
    name: str
    root: Path
    before: bool

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("MLFLOW_TRACKING_URI", None)
        if self.before:
            env["PYTHONPATH"] = str(self.root)
        return env


@dataclass
class Bay:
    tree: Tree
    project: Path
    home: Path
    env: dict[str, str]
    found: dict[str, Any] = field(default_factory=dict)
    spawned: list[subprocess.Popen[str]] = field(default_factory=list)

    def lb(self, *args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "launchbay", *args], cwd=self.project, env={**self.env, **(env or {})},
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    def spawn(self, *args: str, env: dict[str, str] | None = None, patch: tuple[str, str] | None = None) -> subprocess.Popen[str]:
        argv = [sys.executable, "-c", _PATCH, *patch, *args] if patch else [sys.executable, "-m", "launchbay", *args]
        proc = subprocess.Popen(
            argv, cwd=self.project, env={**self.env, **(env or {})},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
        self.spawned.append(proc)
        return proc

    @property
    def local(self) -> Path:
        return self.home / "local" / MODEL

    def gateway(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads((self.local / "gateway.json").read_text())
        return doc

    def admin(self, method: str, body: dict[str, Any] | None = None) -> httpx.Response:
        token = (self.local / "gateway.token").read_text()
        return httpx.request(method, f"http://127.0.0.1:{self.gateway()['admin_port']}/routes", json=body,
                             headers={"Authorization": f"Bearer {token}"}, timeout=5)  # fmt: skip

    def routes(self) -> tuple[str | None, str | None, int]:
        r = self.admin("GET").json()
        return (r.get("stable") or {}).get("version"), (r.get("canary") or {}).get("version"), r["canary_weight"]

    def running(self) -> set[str]:
        out = set()
        for rec_file in (self.local / "servers").glob("v*.json"):
            try:
                rec = json.loads(rec_file.read_text())
                if psutil.pid_exists(rec["pid"]) and psutil.Process(rec["pid"]).status() != psutil.STATUS_ZOMBIE:
                    out.add(rec_file.stem[1:])
            except (OSError, ValueError, psutil.Error):
                continue
        return out

    def sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.home / "ledger.db") as conn:
            return conn.execute(query, args).fetchall()

    def latest(self) -> tuple[int, str]:
        return self.sql("SELECT id, phase FROM releases ORDER BY id DESC LIMIT 1")[0]  # type: ignore[return-value]

    def wait_phase(self, phases: set[str], timeout: float = 180) -> tuple[int, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rid, phase = self.latest()
            if phase in phases:
                return rid, phase
            time.sleep(0.2)
        raise RuntimeError(f"{phases} not reached; latest {self.latest()}")

    def stop_controllers(self) -> None:
        """Nothing of launchbay's runs but the gateway and servers (the old code's normal state)."""
        for proc in self.spawned:
            if proc.poll() is None and proc.args and "controller" in proc.args:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if not self.tree.before:
            self.lb("controller", "--stop")

    def drive(self) -> None:
        """Have a controller drive releases: the old code needs one started; the new one is always on."""
        if self.tree.before:
            self.spawn("controller")
        else:
            self.lb("status")  # any command starts the always-on controller if it is gone


class Clients:
    """Steady `RATE` req/s through the gateway, every answer recorded with its time and latency."""

    def __init__(self, url: str, row: dict[str, Any]) -> None:
        self.url, self.row = url, row
        self.answers: list[tuple[float, int, float]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(5)]

    def __enter__(self) -> Clients:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=15)

    def _run(self, i: int) -> None:
        period = len(self._threads) / RATE
        time.sleep(period * i / len(self._threads))
        with httpx.Client(timeout=10) as c:
            while not self._stop.wait(period):
                sent = time.monotonic()
                try:
                    status = c.post(self.url + "/predict", json={"row": self.row}).status_code
                except httpx.HTTPError:
                    status = 0
                self.answers.append((time.time(), status, time.monotonic() - sent))

    def summary(self, since: float = 0.0) -> dict[str, Any]:
        mine = [a for a in self.answers if a[0] >= since]
        failed = [a for a in mine if not 200 <= a[1] < 300]
        slow = [a for a in mine if a[2] > 0.4]
        return {"requests": len(mine), "failed": len(failed), "over_0.4s": len(slow)}


def until(check: Any, timeout: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if check():
                return round(time.monotonic() - started, 2)
        except Exception:
            pass
        time.sleep(0.05)
    return None


def setup(tree: Tree, tmp: Path) -> Bay:
    project, home = tmp / "project", tmp / "home"
    generate_keypair(home / "keys")
    rollout: dict[str, Any] = {
        **FAST_ROLLOUT, "grace_period": f"{GRACE:g}s",
        "approval": {"required": True, "approvers": people.approvers("alice", "bob")},
    }  # fmt: skip
    config = write_project(project, rows=5000, overrides={"rollout": rollout})
    env = {**tree.env(), "LAUNCHBAY_HOME": str(home), "COLUMNS": "200", "LAUNCHBAY_USER": "ds",
           "XDG_CONFIG_HOME": str(people.CONFIG_HOME)}  # fmt: skip
    bay = Bay(tree, project, home, env)
    for args in (("run",), ("run", "--no-rollout"), ("run", "--no-rollout")):  # v1 serves; v2, v3 wait
        res = bay.lb(*args)
        if res.returncode != 0:
            raise RuntimeError(f"{tree.name}: launchbay {' '.join(args)}:\n{res.stdout[-3000:]}{res.stderr[-3000:]}")
    from launchbay.rollout.local.clients import sample_rows

    features = list(yaml.safe_load(config.read_text())["data"]["features"])
    bay.found["row"] = sample_rows(str(project / "data" / "transactions.parquet"), features, n=1)[0]
    return bay


def _to_approval(bay: Bay, version: str) -> int:
    res = bay.lb("release", f"{MODEL}@{version}", "--detach")
    assert res.returncode == 0, res.stdout + res.stderr
    bay.drive()
    with Clients(f"http://127.0.0.1:{bay.gateway()['port']}", bay.found["row"]):  # shadow needs traffic
        rid, _ = bay.wait_phase({"awaiting-approval"})
    return rid


def _back_to_v1(bay: Bay) -> None:
    """Whatever a scenario left, v1 serves alone again (what on-call would do)."""
    for (rid,) in bay.sql("SELECT id FROM releases WHERE phase IN "
                              "('pending','verified','shadow','canary','awaiting-approval')"):  # fmt: skip
        bay.lb("abort", str(rid))
    if bay.routes()[0] != "1" or bay.routes()[1] is not None:
        bay.lb("rollback", MODEL)
    bay.stop_controllers()


def f1_approve_paused(bay: Bay) -> dict[str, Any]:
    rid = _to_approval(bay, "2")
    bay.stop_controllers()
    with Clients(f"http://127.0.0.1:{bay.gateway()['port']}", bay.found["row"]) as c:
        if bay.tree.before:
            approve = bay.spawn("approve", str(rid), "--as", "alice", patch=("promote", "stop"))
        else:
            approve = bay.spawn("approve", str(rid), "--as", "alice", env={"LAUNCHBAY_FAULTS": "after:approved=stop"})
        until(lambda: psutil.Process(approve.pid).status() == psutil.STATUS_STOPPED, 60)
        rollback = bay.lb("rollback", MODEL, "--as", "oncall")
        os.kill(approve.pid, signal.SIGCONT)
        said, _ = approve.communicate(timeout=120)
        resumed = time.time()
        time.sleep(8)
        clients = c.summary(since=resumed)
    stable = bay.routes()[0]
    out = {
        "rollback_exit": rollback.returncode, "approve_exit": approve.returncode,
        "approve_said": " ".join(said.split())[-160:], "ledger": bay.latest()[1],
        "routes_to": stable, "routed_version_running": stable in bay.running(),
        "clients_after_resume": clients,
    }  # fmt: skip
    _back_to_v1(bay)
    return out


def f2_controller_killed_at_rollback(bay: Bay) -> dict[str, Any]:
    res = bay.lb("release", f"{MODEL}@2", "--detach")
    assert res.returncode == 0, res.stdout + res.stderr
    bay.stop_controllers()  # one of ours, armed, drives it instead
    if bay.tree.before:
        controller = bay.spawn("controller", patch=("settle", "kill"))
    else:
        controller = bay.spawn("controller", env={"LAUNCHBAY_FAULTS": "after:rollback=kill"})
    with Clients(f"http://127.0.0.1:{bay.gateway()['port']}", bay.found["row"]) as c:
        bay.wait_phase({"canary"})
        until(lambda: bay.routes()[2] > 0, 30)
        candidate = json.loads((bay.local / "servers" / "v2.json").read_text())["pid"]
        for p in [psutil.Process(candidate), *psutil.Process(candidate).children(recursive=True)]:
            p.suspend()  # the candidate hangs: the controller decides to roll back, and dies
        controller.wait(timeout=120)
        killed = time.time()
        time.sleep(3)
        stuck = {"ledger": bay.latest()[1], "routes": bay.routes(), "candidate_running": "2" in bay.running()}
        restarted = time.monotonic()
        bay.drive()  # what the tester did: start `launchbay controller` again
        routed = until(lambda: bay.routes()[1] is None, 20)
        routed_s = None if routed is None else round(time.monotonic() - restarted, 1)
        stopped = until(lambda: "2" not in bay.running(), 20)
        after = {"routes_converged_s": routed_s,
                 "candidate_stopped_s": None if stopped is None else round(time.monotonic() - restarted, 1),
                 "routes": bay.routes(), "candidate_running": "2" in bay.running()}  # fmt: skip
        clients = c.summary(since=killed)
    for p in psutil.process_iter():
        if p.pid == candidate:
            p.resume()
    out = {"controller_exit": controller.returncode, "after_kill": stuck, "after_restart_20s": after,
           "clients_since_kill": clients}  # fmt: skip
    _back_to_v1(bay)
    return out


def f3_ledger_unwritable(bay: Bay) -> dict[str, Any]:
    files = [str(bay.home / f) for f in ("ledger.db", "ledger.db-wal", "ledger.db-shm") if (bay.home / f).exists()]
    if bay.tree.before:
        follower = bay.spawn("release", f"{MODEL}@2")
    else:
        bay.drive()
        follower = bay.spawn("release", f"{MODEL}@2")
    with Clients(f"http://127.0.0.1:{bay.gateway()['port']}", bay.found["row"]) as c:
        bay.wait_phase({"canary"})
        until(lambda: bay.routes()[2] > 0, 30)
        subprocess.run(["chattr", "+i", *files], check=True)
        made = time.monotonic()
        try:
            said, _ = follower.communicate(timeout=120)
            exited = round(time.monotonic() - made, 1)
            time.sleep(5)
            routes = bay.routes()
            status = bay.lb("status", "--json")
        finally:
            subprocess.run(["chattr", "-i", *files], check=False)
        clients = c.summary()
    error = next((ln for ln in said.splitlines() if "Error" in ln or "error:" in ln), said.splitlines()[-1:])
    shown = json.loads(status.stdout).get("controller") if status.returncode == 0 else status.stderr[-200:]
    out = {
        "exit": follower.returncode, "exited_after_s": exited, "said": str(error)[:200],
        "routes_5s_later": routes, "status_shows": (shown or {}).get("ledger_error") if isinstance(shown, dict) else shown,
        "clients": clients,
    }  # fmt: skip
    _back_to_v1(bay)
    return out


def f4_supervisor_killed(bay: Bay) -> dict[str, Any]:
    if not bay.tree.before:
        bay.drive()  # the always-on controller: the only thing of launchbay's that runs
        until(lambda: (bay.home / "controller" / MODEL / "controller.json").exists(), 30)
        time.sleep(3)
    gw = bay.gateway()
    with Clients(f"http://127.0.0.1:{gw['port']}", bay.found["row"]) as c:
        time.sleep(1)
        killed = time.time()
        os.kill(gw["supervisor_pid"], signal.SIGKILL)
        back = until(lambda: httpx.post(f"http://127.0.0.1:{gw['port']}/predict", json={"row": bay.found["row"]},
                                        timeout=1).status_code == 200, 18)  # fmt: skip
        time.sleep(max(0.0, 18 - (time.time() - killed)))
        clients = c.summary(since=killed)
    out = {"answered_again_after_s": back, "clients_18s": clients}
    bay.lb("status")  # the old code restarts it only when a command touches the target
    return out


def f5_previous_stable(bay: Bay) -> dict[str, Any]:
    def promote(version: str) -> None:
        rid = _to_approval(bay, version)
        assert bay.lb("approve", str(rid), "--as", "alice").returncode == 0
        if bay.tree.before:
            bay.stop_controllers()  # as after `make run`: nothing but the command ran

    promote("2")
    time.sleep(GRACE + 6)
    on_time = "1" in bay.running()
    bay.lb("rollback", MODEL)  # v1 serves again (started anew if it had been stopped)
    promote("3")
    bay.lb("release", f"{MODEL}@2", "--detach")  # another release within v3's grace period
    time.sleep(5)
    superseded = "1" in bay.running()
    rid, _ = bay.latest()
    bay.lb("abort", str(rid))
    bay.stop_controllers()
    return {"v1_running_grace_plus_6s_after_promotion": on_time,
            "v1_running_5s_after_a_new_release_within_grace": superseded}  # fmt: skip


def f6_audit(bay: Bay) -> dict[str, Any]:
    def audit() -> str:
        res = bay.lb("audit", MODEL)
        return f"exit {res.returncode}: " + " ".join((res.stdout + res.stderr).split())[:220]

    intact = audit()
    with sqlite3.connect(bay.home / "ledger.db") as conn:
        conn.execute("DROP TRIGGER IF EXISTS events_no_delete")
        conn.execute("DROP TRIGGER IF EXISTS events_no_update")
        last = conn.execute("SELECT max(id) FROM events WHERE model = ?", (MODEL,)).fetchone()[0]
        conn.execute("DELETE FROM events WHERE id = ?", (last,))
    removed = audit()
    from launchbay.rollout.ledger.schema import event_digest

    with sqlite3.connect(bay.home / "ledger.db") as conn:
        conn.row_factory = sqlite3.Row
        for trigger in ("events_no_update", "events_no_delete"):  # launchbay made them again
            conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        conn.execute("DROP INDEX IF EXISTS events_chain")
        rows = [dict(r) for r in conn.execute("SELECT * FROM events WHERE model = ? ORDER BY id", (MODEL,))]
        prev = ""
        for i, row in enumerate(rows):
            if i == len(rows) // 2:
                row["reason"] = row["reason"] + " (edited)"
            row["prev_digest"] = prev
            row["digest"] = prev = event_digest(row)
            conn.execute("UPDATE events SET reason = ?, prev_digest = ?, digest = ? WHERE id = ?",
                         (row["reason"], row["prev_digest"], row["digest"], row["id"]))  # fmt: skip
    recomputed = audit()
    return {"intact": intact, "last_event_deleted": removed, "edited_chain_recomputed": recomputed}


def f7_path_label(bay: Bay) -> dict[str, Any]:
    rogue_port = _free_port()
    rogue = subprocess.Popen([sys.executable, str(ROOT / "tests" / "stub_model.py"), str(rogue_port), "666"])
    try:
        until(lambda: httpx.get(f"http://127.0.0.1:{rogue_port}/readyz", timeout=1).status_code == 200, 10)
        elsewhere = bay.home.parent / "elsewhere"
        elsewhere.mkdir(exist_ok=True)
        (elsewhere / "evil.json").write_text(json.dumps({"pid": os.getpid(), "port": rogue_port, "log": "",
                                                         "started_at": time.time()}))  # fmt: skip
        # Through a directory that exists -- a server's own BENTOML_HOME, `servers/v1-bentoml` --
        # up and out of the state directory, as the tester did.
        label = "1-bentoml/" + os.path.relpath(elsewhere / "evil", bay.local / "servers" / "v1-bentoml")
        put = bay.admin("PUT", {"stable": {"version": label, "url": f"http://127.0.0.1:{rogue_port}"}})
        answers = [httpx.post(f"http://127.0.0.1:{bay.gateway()['port']}/predict", json={"row": bay.found["row"]},
                              timeout=5) for _ in range(20)]  # fmt: skip
        by_rogue = sum(1 for a in answers if a.headers.get("X-Launchbay-Version") == label)
        return {"route_change": put.status_code, "said": put.text[:160], "answered_by_rogue_of_20": by_rogue}
    finally:
        rogue.kill()
        rogue.wait()
        bay.lb("rollback", MODEL)  # the ledger's routes again, whatever happened


def f8_inputs(bay: Bay) -> dict[str, Any]:
    port = bay.gateway()["port"]
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(1000)]
    for s in idle:
        s.setblocking(False)
    time.sleep(20)
    closed = 0
    for s in idle:
        try:
            closed += s.recv(1) == b""
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
        s.close()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        started = time.monotonic()
        try:
            head = s.recv(200).split(b"\r\n")[0].decode()
        except TimeoutError:
            head = "no answer in 30 s"
        truncated = {"answer": head, "after_s": round(time.monotonic() - started, 1)}
    big = httpx.post(f"http://127.0.0.1:{port}/predict", content=b"{" + b" " * (20 * 1024 * 1024) + b"}",
                     headers={"Content-Type": "application/json"}, timeout=30)  # fmt: skip
    rid = _to_approval(bay, "2")
    refused = bay.lb("approve", str(rid), "--as", "mallory")
    evidence = json.loads(bay.sql("SELECT evidence FROM events WHERE action = 'approve-refused' "
                                  "ORDER BY id DESC LIMIT 1")[0][0])  # fmt: skip
    bay.lb("abort", str(rid))
    bay.stop_controllers()
    return {
        "idle_connections_closed_after_20s_of_1000": closed, "truncated_body": truncated,
        "body_20MB": {"status": big.status_code, "content_type": big.headers.get("content-type", "")[:30]},
        "refused_approval_exit": refused.returncode, "refusal_records_os_user": "ran_by" in evidence,
    }  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SCENARIOS = [
    ("F1 approve paused, rollback meanwhile", f1_approve_paused),
    ("F2 controller killed between rollback and routes", f2_controller_killed_at_rollback),
    ("F3 ledger unwritable during a canary", f3_ledger_unwritable),
    ("F4 supervisor killed, nothing else running", f4_supervisor_killed),
    ("F5 previous stable: grace over, superseded", f5_previous_stable),
    ("F7 a path as a version label", f7_path_label),
    ("F8 idle connections, truncated and huge bodies, refusals", f8_inputs),
    ("F6 audit: tail deleted, chain recomputed", f6_audit),
]


def run(tree: Tree) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"lb-faults-{tree.name}-") as t:
        bay = setup(tree, Path(t))
        out: dict[str, Any] = {}
        try:
            for name, fn in SCENARIOS:
                try:
                    out[name] = fn(bay)
                except Exception as exc:  # a finding that cannot even be tried is a finding too
                    out[name] = {"error": f"{type(exc).__name__}: {exc}"[:400]}
                    for rel in ("ledger.db", "ledger.db-wal", "ledger.db-shm"):
                        subprocess.run(["chattr", "-i", str(bay.home / rel)], check=False, capture_output=True)
                    with contextlib.suppress(Exception):
                        _back_to_v1(bay)  # the next scenario starts from v1 serving alone
                print(f"{tree.name}: {name}: {json.dumps(out[name], default=str)}", flush=True)
        finally:
            for proc in bay.spawned:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
            bay.lb("down")
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="a commit to compare with (the one before issue 28)")
    parser.add_argument("--only", help="comma-separated scenario ids (F1,F6): run these, merge into the results")
    args = parser.parse_args()
    if args.only:
        wanted = set(args.only.split(","))
        SCENARIOS[:] = [s for s in SCENARIOS if s[0].split()[0] in wanted]
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
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)], check=False)
            shutil.rmtree(worktree, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.only and (RESULTS / "faults.json").exists():  # merge: keep the other scenarios' figures
        kept = json.loads((RESULTS / "faults.json").read_text())
        for side in ("before", "after"):
            if side in results:
                kept.setdefault(side, {}).update(results[side])
        kept["rerun"] = {"only": args.only, "when": results["when"]}
        results = kept
    (RESULTS / "faults.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (RESULTS / "faults.md").write_text(render(results))
    print(render(results))


def render(results: dict[str, Any]) -> str:
    lines = [
        "# Issue 28's findings, reproduced before and after",
        "",
        f"{results['when']}, {results['cpus']} CPUs; `benchmarks/faults.py"
        + (f" --before {results['before']['ref']}`" if "before" in results else "`")
        + f". Real processes: BentoML servers, the gateway, Prometheus, the CLI; {RATE:g} req/s of clients.",
        "",
        "| finding | before | after |",
        "|---|---|---|",
    ]
    after, before = results["after"], results.get("before", {})
    for name in after:
        lines.append(f"| {name} | `{json.dumps(before.get(name, '-'))}` | `{json.dumps(after[name])}` |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
