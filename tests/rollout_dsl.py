"""Given / When / Then for rollouts against real processes (the shape of argo-rollouts'
test/fixtures/{given,when,then}.go): one shared state, three small vocabularies, chained.

    given.candidate("errors").client_traffic(40) \\
        .when().released() \\
        .then().exit_code(1).phase(Phase.ROLLED_BACK).said("candidate error rate").no_client_failed()

`Given` sets up (which candidate, client traffic), `When` acts the way users and faults do (the
CLI, a SIGKILL), `Then` asserts what users would see (exit codes, messages, phases, routes, what
clients were answered). Every process a step starts is stopped when the test ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fraud_model import FEATURES
from harness import Launchbay, Result
from projects import write_project

from launchbay import procs
from launchbay.checks.signature import generate_keypair
from launchbay.home import Home
from launchbay.rollout import daemon
from launchbay.rollout.daemon import ControllerRecord
from launchbay.rollout.engine.phases import Phase
from launchbay.rollout.engine.release import Event, Release
from launchbay.rollout.ledger.store import SqlLedger
from launchbay.rollout.local.clients import Clients, sample_rows
from launchbay.rollout.local.supervisor import GatewayRecord, token

MODEL = "fraud-detector"
E2E = Path(__file__).resolve().parent / "e2e"


@contextlib.contextmanager
def open_bay(
    root: Path, overrides: dict[str, Any], kinds: list[str], env: dict[str, str] | None = None
) -> Iterator[Bay]:
    """A project under `root` with version 1 serving (trained, gated, signed, packaged and
    released by `launchbay run`) and one candidate registered per kind (`good`, or a fault of
    faults.py); every process launchbay started for it is stopped at the end, and checked gone."""
    home = root / "home"
    generate_keypair(home / "keys")
    config = write_project(root, rows=5000, overrides=overrides)
    shutil.copy(E2E / "rollout_project" / "faults.py", root / "faults.py")
    b = Bay(root, home, Launchbay(root, home, env={"LAUNCHBAY_USER": "dana", **(env or {})}))
    try:
        first = b.cli.run("run")
        assert first.returncode == 0, first.output
        assert f"{MODEL}@v1#1: promoted" in first.stdout
        made = subprocess.run(
            [sys.executable, str(E2E / "candidates.py"), str(config), "data/transactions.parquet", *kinds],
            cwd=root, env=b.cli.environ(), capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert made.returncode == 0, made.stdout + made.stderr
        b.versions = json.loads(made.stdout.strip().splitlines()[-1])
        yield b
    finally:
        stop_everything(b)


def stop_everything(bay: Bay) -> None:
    """Stop every process the tests' launchbay started: `down`, then whatever carries its mark."""
    bay.cli.run("down", timeout=120)
    for owner in (f"{bay.home.resolve()}#{MODEL}", f"{bay.home.resolve()}#prometheus"):
        assert procs.sweep(owner) == [], f"`launchbay down` left processes of {owner} running"


@dataclass
class Bay:
    """A project with a stable version serving and candidates registered (one per kind)."""

    root: Path
    home: Path
    cli: Launchbay
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def ledger(self) -> SqlLedger:
        return SqlLedger(f"sqlite:///{self.home / 'ledger.db'}")

    @property
    def gateway_record(self) -> GatewayRecord:
        rec = GatewayRecord.read(self.home / "local" / MODEL / "gateway.json")
        assert rec is not None, "no gateway record"
        return rec

    @property
    def gateway(self) -> str:
        return self.gateway_record.url

    def routes(self) -> dict[str, Any]:
        """The routes in force, asked over the gateway's admin channel (with its token)."""
        headers = {"Authorization": f"Bearer {token(self.home / 'local' / MODEL)}"}
        doc: dict[str, Any] = httpx.get(
            self.gateway_record.admin_url + "/routes", headers=headers, timeout=5
        ).json()
        return doc

    @property
    def controller_record(self) -> ControllerRecord | None:
        """The always-on controller as it records itself."""
        return daemon.status(Home(self.home), MODEL)

    def server(self, version: str) -> procs.ProcessRecord | None:
        return procs.ProcessRecord.read(self.home / "local" / MODEL / "servers" / f"v{version}.json")

    def latest(self) -> Release:
        return self.ledger.releases(MODEL)[0]

    def events(self, release: Release) -> list[Event]:
        return self.ledger.history(release_id=release.id)


@dataclass
class Common:
    """What a scenario has done so far."""

    bay: Bay
    version: str = ""
    rate: float = 0.0
    client: Clients | None = None
    result: Result | None = None
    background: subprocess.Popen[str] | None = None
    release_id: int | None = None
    remembered: dict[str, Any] = field(default_factory=dict)
    hung: list[int] = field(default_factory=list)

    @property
    def release(self) -> Release:
        if self.release_id is not None:
            return self.bay.ledger.get(self.release_id)
        return self.bay.latest()

    def start_clients(self) -> None:
        if self.rate and self.client is None:
            rows = sample_rows(str(self.bay.root / "data" / "transactions.parquet"), FEATURES, n=300)
            self.client = Clients(self.bay.gateway, rows, rate=self.rate).start()

    def close(self) -> None:
        for pid in self.hung:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGCONT)
        for proc in (self.background,):
            if proc is not None and proc.poll() is None:
                procs.stop(proc.pid)
        if self.client is not None:
            self.client.stop()


class Given:
    def __init__(self, common: Common) -> None:
        self.c = common

    def candidate(self, kind: str) -> Given:
        """The version to release: the example model (`good`) or one with a fault of faults.py."""
        self.c.version = self.c.bay.versions[kind]
        return self

    def client_traffic(self, rate: float = 40) -> Given:
        """Clients send `rate` requests per second through the gateway from now on."""
        self.c.rate = rate
        self.c.start_clients()
        return self

    def when(self) -> When:
        return When(self.c)


class When:
    def __init__(self, common: Common) -> None:
        self.c = common

    def released(self, *flags: str) -> When:
        """`launchbay release MODEL@V` in the foreground, to its end (or its wait for approval)."""
        self.c.result = self.c.bay.cli.run("release", f"{MODEL}@{self.c.version}", *flags)
        self.c.release_id = self.c.bay.latest().id
        time.sleep(0.5)  # the last requests sent before the end get their answers
        return self

    def released_in_background(self) -> When:
        """`launchbay release MODEL@V` started and left running."""
        self.c.background = self.c.bay.cli.spawn("release", f"{MODEL}@{self.c.version}")
        return self

    def the_release_command_ends(self, timeout: float = 120) -> When:
        assert self.c.background is not None
        output, _ = self.c.background.communicate(timeout=timeout)
        self.c.result = Result(self.c.background.returncode, output, "")
        self.c.release_id = self.c.bay.latest().id
        return self

    def controller_killed(self) -> When:
        """SIGKILL the model's always-on controller: no chance to clean up."""
        rec = self.c.bay.controller_record
        assert rec is not None and rec.running, "no controller runs"
        os.kill(rec.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while rec.running and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not rec.running
        self.c.remembered["step_index"] = self.c.release.step_index
        self.c.remembered["routes"] = self.c.bay.routes()
        return self

    def prometheus_hung(self) -> When:
        """Prometheus stops answering (SIGSTOP; resumed when the scenario ends)."""
        rec = procs.ProcessRecord.read(self.c.bay.home / "prometheus" / "prometheus.json")
        assert rec is not None, "Prometheus is not running"
        os.kill(rec.pid, signal.SIGSTOP)
        self.c.hung.append(rec.pid)
        return self

    def gateway_killed(self, part: str = "worker") -> When:
        """SIGKILL the gateway's worker (the process serving clients) or its supervisor."""
        rec = self.c.bay.gateway_record
        self.c.remembered["gateway"] = rec
        self.c.remembered["killed_at"] = time.time()
        self.c.remembered.setdefault("kills", []).append(self.c.remembered["killed_at"])
        os.kill(rec.pid if part == "worker" else rec.supervisor_pid, signal.SIGKILL)
        return self

    def gateway_answers_again(self, timeout: float = 10) -> When:
        """Wait until a client request is answered again; remember how long that took."""
        url = self.c.remembered["gateway"].url + "/predict"
        started = self.c.remembered["killed_at"]
        row = {"row": sample_rows(str(self.c.bay.root / "data" / "transactions.parquet"), FEATURES, n=1)[0]}
        with httpx.Client(timeout=2) as client:
            while time.time() - started < timeout:
                try:
                    if client.post(url, json=row).status_code == 200:
                        self.c.remembered["back_after"] = time.time() - started
                        return self
                except httpx.HTTPError:
                    time.sleep(0.02)
        raise AssertionError(f"the gateway did not answer within {timeout}s")

    def phase_reached(self, phase: Phase, timeout: float = 120) -> When:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.c.bay.latest()
            if r.phase is phase:
                self.c.release_id = r.id
                self.c.start_clients()
                return self
            time.sleep(0.2)
        latest = self.c.bay.latest()
        raise AssertionError(f"{phase.value} not reached in {timeout:g}s; latest release: {latest}")

    def waited(self, seconds: float) -> When:
        time.sleep(seconds)
        return self

    def launchbay(self, *args: str) -> When:
        """Any CLI verb; `{release}` in an argument is the scenario's release id."""
        rid = str(self.c.release_id if self.c.release_id is not None else self.c.bay.latest().id)
        self.c.result = self.c.bay.cli.run(*(a.replace("{release}", rid) for a in args))
        return self

    def launchbay_as_a_stranger(self, *args: str) -> When:
        """A CLI verb run on a machine that holds nobody's approver key."""
        rid = str(self.c.release_id if self.c.release_id is not None else self.c.bay.latest().id)
        empty = self.c.bay.root / "stranger-config"
        empty.mkdir(exist_ok=True)
        args = tuple(a.replace("{release}", rid) for a in args)
        self.c.result = self.c.bay.cli.run(*args, env={"XDG_CONFIG_HOME": str(empty)})
        return self

    def then(self) -> Then:
        return Then(self.c)


class Then:
    def __init__(self, common: Common) -> None:
        self.c = common

    def _result(self) -> Result:
        assert self.c.result is not None, "no command has run"
        return self.c.result

    def exit_code(self, code: int) -> Then:
        res = self._result()
        assert res.returncode == code, res.output
        return self

    def said(self, text: str) -> Then:
        """The last command printed `text` (stdout or stderr)."""
        assert text in self._result().output, self._result().output
        return self

    def json_says(self, **fields: object) -> Then:
        """The last command printed one JSON document (--json) holding these fields."""
        doc = json.loads(self._result().stdout)
        assert {k: doc.get(k) for k in fields} == fields, doc
        return self

    def phase(self, phase: Phase) -> Then:
        r = self.c.release
        assert r.phase is phase, (r, self.c.result.output if self.c.result else "")
        return self

    def reason_says(self, text: str) -> Then:
        """The release's newest event gives `text` as its reason."""
        last = self.c.bay.events(self.c.release)[-1]
        assert text in last.reason, last
        return self

    def decided_by(self, actor: str, action: str, verdict: str | None = None) -> Then:
        last = self.c.bay.events(self.c.release)[-1]
        assert (last.actor, last.action) == (actor, action), last
        if verdict is not None:
            assert last.evidence["analysis"]["verdict"] == verdict, last.evidence
        return self

    def entered(self, *phases: Phase) -> Then:
        """The release went through exactly these phases, in this order."""
        assert self._entered() == [p.value for p in phases]
        return self

    def went_through(self, phase: Phase) -> Then:
        assert phase.value in self._entered(), self._entered()
        return self

    def never_entered(self, phase: Phase) -> Then:
        assert phase.value not in self._entered(), self._entered()
        return self

    def _entered(self) -> list[str]:
        return [e.phase_to or "" for e in self.c.bay.events(self.c.release) if e.phase_from != e.phase_to]

    def refusals_recorded_for(self, *actors: str) -> Then:
        refused = [e.actor for e in self.c.bay.events(self.c.release) if e.action == "approve-refused"]
        assert refused == list(actors), refused
        return self

    def routes(self, stable: str, canary: str | None = None) -> Then:
        routes = self.c.bay.routes()
        assert routes["stable"]["version"] == stable, routes
        assert (routes["canary"] or {}).get("version") == canary, routes
        return self

    def controller_running(self, within: float = 60) -> Then:
        """The always-on controller runs (started again by whichever command found it gone)."""
        deadline = time.monotonic() + within
        while not ((rec := self.c.bay.controller_record) is not None and rec.running and rec.heartbeat_at):
            assert time.monotonic() < deadline, rec
            time.sleep(0.1)
        return self

    def traffic_split_unchanged(self) -> Then:
        """Nothing moved the release or its traffic since the controller was killed."""
        assert self.c.release.step_index == self.c.remembered["step_index"]
        assert self.c.bay.routes()["canary_weight"] == self.c.remembered["routes"]["canary_weight"]
        return self

    def gateway_back_within(self, seconds: float) -> Then:
        """Clients were answered again within `seconds` of the kill, on the same port."""
        back = self.c.remembered["back_after"]
        assert back < seconds, f"clients waited {back:.2f}s"
        assert self.c.bay.gateway_record.port == self.c.remembered["gateway"].port
        return self

    def client_failures_only_within(self, seconds: float) -> Then:
        """Every failed client request falls inside `seconds` after a kill."""
        assert self.c.client is not None
        kills = self.c.remembered["kills"]
        failed = [a.at for a in self.c.client.snapshot() if not 200 <= a.status < 300]
        outside = [at - kills[-1] for at in failed if not any(0 <= at - k <= seconds for k in kills)]
        assert not outside, outside
        return self

    def champion_is(self, version: str) -> Then:
        status = json.loads(self.c.bay.cli.run("status", "--json").stdout)
        assert str(status["aliases"]["champion"]["version"]) == version, status["aliases"]
        return self

    def no_client_failed(self) -> Then:
        seen = self._clients()
        assert seen["failed"] == 0, seen
        return self

    def no_client_was_answered_by_the_candidate(self) -> Then:
        seen = self._clients()
        assert self.c.version not in seen["by_version"], seen
        return self

    def clients_were_answered_by_the_candidate(self) -> Then:
        seen = self._clients()
        assert seen["by_version"].get(self.c.version, 0) > 0, seen
        return self

    def server_record_gone(self) -> Then:
        assert self.c.bay.server(self.c.version) is None
        return self

    def status_says_why(self, check: str) -> Then:
        """`launchbay status --json` gives the release's reason and the FAIL analysis that ended it
        (not the last PASS before it), with `check` among the failed checks."""
        doc = self.c.bay.cli.run("status", "--json").json()
        shown = next(r for r in doc["releases"] if r["id"] == self.c.release.id)
        assert shown["reason"], shown
        failed = [c["check"] for c in shown["analysis"]["checks"] if c["verdict"] == "FAIL"]
        assert shown["analysis"]["verdict"] == "FAIL" and check in failed, shown
        return self

    def holds(self, check: Callable[[Bay, Release], bool], what: str) -> Then:
        assert check(self.c.bay, self.c.release), what
        return self

    def _clients(self) -> dict[str, Any]:
        assert self.c.client is not None, "no client traffic in this scenario"
        return self.c.client.summary()

    def when(self) -> When:
        return When(self.c)
