"""A step forked warm behaves as the same `python -m MODULE` started cold: same sys.path, argv,
output, exit status, and the interpreter's exit (threads joined, atexit handlers run); its server
outlives a run, serves only its own environment and owner, and ends when told or idle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from launchbay import procs
from launchbay.pipelines import step_server, warm

PROBE = """
import atexit, json, os, sys, threading, time
from pathlib import Path

mode = sys.argv[1]
if mode == "describe":
    print(json.dumps({"path": sys.path, "argv": sys.argv, "name": __name__, "cwd": os.getcwd(),
                      "env": os.environ.get("PROBE_ENV")}))
elif mode == "raise":
    raise ValueError("the step's own error")
elif mode == "exit-message":
    sys.exit("stopped: the data gate said no")
elif mode == "exit-code":
    sys.exit(4)
elif mode == "slow":
    Path(sys.argv[2]).write_text(str(os.getpid()))
    time.sleep(float(sys.argv[3]))
    print("finished")
    sys.exit(5)
elif mode == "finish":
    out = Path(sys.argv[2])
    def late():
        time.sleep(0.5)
        out.with_suffix(".thread").write_text("joined")
    threading.Thread(target=late).start()
    atexit.register(lambda: out.with_suffix(".atexit").write_text("ran"))
    print("buffered, no newline", end="")
"""


LIGHT = str(Path(__file__).parent / "light_preload.py")


def _servers() -> Path:
    return Path(os.environ["LAUNCHBAY_HOME"]) / "steps"


def _server_pid() -> int:
    sockets = sorted(_servers().glob("*.sock"))
    assert len(sockets) == 1, sockets
    return int(step_server.request(sockets[0], {"op": "ping"})["pid"])


@pytest.fixture(autouse=True)
def _home(lb_home: Path) -> Path:
    return lb_home  # every test's servers live in its own state directory


@pytest.fixture
def starter(monkeypatch: pytest.MonkeyPatch) -> Iterator[warm.Starter]:
    monkeypatch.delenv(warm.SWITCH, raising=False)  # these tests are about warm starts, whatever CI sets
    monkeypatch.setenv(warm.IDLE, "60")
    s = warm.Starter(sys.executable, preload=LIGHT)
    if s.disabled:
        pytest.fail(f"warm starts are unavailable here: {s.disabled}")
    yield s
    for pid in warm.stop_servers(_servers()):
        assert not procs.alive(pid)


def _project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    (tmp_path / "steps_probe.py").write_text(textwrap.dedent(PROBE))
    lib = tmp_path / "lib"
    lib.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {"PYTHONPATH": str(lib), "PROBE_ENV": "the step's"}
    return tmp_path, env


def _warm(starter: warm.Starter, cwd: Path, env: dict[str, str], *args: str) -> tuple[int | None, str, str]:
    out, err = cwd / "warm.out", cwd / "warm.err"
    proc = starter.start(
        warm.Launch("steps_probe", list(args), env, str(cwd), str(out), str(err), str(cwd / "st"))
    )
    assert proc is not None, starter.disabled
    code = proc.wait(60)
    return code, out.read_text(), err.read_text()


def _cold(cwd: Path, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "steps_probe", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stdout, done.stderr


def test_a_warm_step_sees_the_sys_path_argv_and_environment_a_cold_one_would(
    starter: warm.Starter, tmp_path: Path
) -> None:
    cwd, env = _project(tmp_path)
    code, out, _ = _warm(starter, cwd, env, "describe")
    cold_code, cold_out, _ = _cold(cwd, env, "describe")
    seen, expected = json.loads(out), json.loads(cold_out)
    assert code == cold_code == 0
    assert seen["path"] == expected["path"]  # cwd first, then $PYTHONPATH, then the interpreter's
    assert seen["path"][:2] == [str(cwd), str(cwd / "lib")]
    assert seen["name"] == "__main__" and seen["cwd"] == str(cwd) and seen["env"] == "the step's"
    assert seen["argv"] == expected["argv"] == [str(cwd / "steps_probe.py"), "describe"]


@pytest.mark.parametrize(
    ("mode", "code", "says"),
    [
        ("raise", 1, "ValueError: the step's own error"),
        ("exit-message", 1, "stopped: the data gate said no"),
        ("exit-code", 4, ""),
    ],
)
def test_a_failing_step_exits_and_explains_itself_as_a_cold_one_would(
    starter: warm.Starter, tmp_path: Path, mode: str, code: int, says: str
) -> None:
    cwd, env = _project(tmp_path)
    warm_code, _, warm_err = _warm(starter, cwd, env, mode)
    cold_code, _, cold_err = _cold(cwd, env, mode)
    assert warm_code == cold_code == code
    assert says in warm_err and says in cold_err


def test_a_warm_step_ends_as_the_interpreter_would_threads_joined_atexit_run_output_flushed(
    starter: warm.Starter, tmp_path: Path
) -> None:
    cwd, env = _project(tmp_path)
    marker = tmp_path / "marker"
    code, out, err = _warm(starter, cwd, env, "finish", str(marker))
    assert code == 0, err
    assert out == "buffered, no newline"
    assert marker.with_suffix(".thread").read_text() == "joined"
    assert marker.with_suffix(".atexit").read_text() == "ran"


def test_only_hera_runner_steps_of_this_interpreter_start_warm(starter: warm.Starter) -> None:
    runner = [sys.executable, "-m", "hera.workflows.runner", "-e", "m:f", "file.py"]
    assert starter.eligible(runner)
    assert not starter.eligible([sys.executable, "-m", "other.module", "x"])
    assert not starter.eligible(["/usr/bin/python3", *runner[1:]])
    other = warm.Starter("/usr/bin/python3")
    assert other.disabled == "the steps' interpreter is not this one" and not other.eligible(runner)


def _orphan(starter: warm.Starter, tmp_path: Path, seconds: int) -> tuple[warm.WarmProcess, int, Path]:
    """A slow step (exit 5 after `seconds`) whose server is SIGKILLed once the step runs:
    the step, the server's pid and the step's pid file."""
    import signal
    import time

    cwd, env = _project(tmp_path)
    started = tmp_path / "started"
    launch = warm.Launch(
        "steps_probe", ["slow", str(started), str(seconds)], env, str(cwd),
        str(cwd / "slow.out"), str(cwd / "slow.err"), str(cwd / "st"),
    )  # fmt: skip
    proc = starter.start(launch)
    assert proc is not None
    while not started.exists():
        time.sleep(0.05)
    server = _server_pid()
    os.kill(server, signal.SIGKILL)
    assert proc.wait(0.5) is None  # not reported as ended: it is still running
    return proc, server, started


def test_a_step_outlives_its_server_being_killed_and_its_exit_code_still_arrives(
    starter: warm.Starter, tmp_path: Path
) -> None:
    """Killed from outside (or by the OOM killer), the server no longer reports the step's exit:
    the step runs on, is followed to its end, its own code is kept; the next step gets a new server."""
    import time

    proc, server, _ = _orphan(starter, tmp_path, 3)
    began = time.monotonic()
    assert proc.wait(60) == 5
    assert time.monotonic() - began >= 2 and (tmp_path / "slow.out").read_text() == "finished\n"
    cwd, env = _project(tmp_path)
    code, again, _ = _warm(starter, cwd, env, "describe")
    assert code == 0 and json.loads(again)["name"] == "__main__"
    assert _server_pid() != server


def test_a_step_killed_after_its_server_died_is_failed_and_says_so(
    starter: warm.Starter, tmp_path: Path
) -> None:
    import signal

    proc, _, started = _orphan(starter, tmp_path, 30)
    os.kill(int(started.read_text()), signal.SIGKILL)
    assert proc.wait(10) == warm.LOST
    assert "server died while this step ran" in (tmp_path / "slow.err").read_text()


def test_the_server_outlives_the_run_and_serves_the_next_one_until_stopped(
    starter: warm.Starter, tmp_path: Path
) -> None:
    """The second run's steps are forked by the first run's server (what makes a second run
    fast); `launchbay down` (stop_servers) ends it, and a later step starts a new one."""
    cwd, env = _project(tmp_path)
    assert _warm(starter, cwd, env, "describe")[0] == 0
    server = _server_pid()
    starter.stop()  # the end of a run, idle limit 60 s: the server stays
    later = warm.Starter(sys.executable, preload=LIGHT)  # the next `launchbay run`, another process
    assert _warm(later, cwd, env, "describe")[0] == 0
    assert _server_pid() == server
    assert warm.stop_servers(_servers()) == [server]
    assert not procs.alive(server) and not list(_servers().glob("*.sock"))
    assert _warm(later, cwd, env, "describe")[0] == 0
    assert _server_pid() != server


def test_with_an_idle_limit_of_zero_the_server_ends_with_the_run(
    starter: warm.Starter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(warm.IDLE, "0")
    cwd, env = _project(tmp_path)
    assert _warm(starter, cwd, env, "describe")[0] == 0
    server = _server_pid()
    starter.stop()
    assert _gone(server)


def _gone(pid: int, timeout: float = 10) -> bool:
    import time

    end = time.monotonic() + timeout
    while procs.alive(pid) and time.monotonic() < end:
        time.sleep(0.05)
    return not procs.alive(pid)


def test_an_idle_server_ends_by_itself_and_removes_its_socket(tmp_path: Path) -> None:
    sock = tmp_path / "idle.sock"
    server = subprocess.Popen([sys.executable, "-m", warm.SERVER, str(sock), "1", LIGHT])
    try:
        assert server.wait(30) == 0
        assert not sock.exists()
    finally:
        server.kill()
        server.wait()


def test_a_server_whose_later_import_starts_a_thread_stops_serving(tmp_path: Path) -> None:
    """Forking is only safe from one thread: checked again after every item imported while serving."""
    sock = tmp_path / "late.sock"
    late = str(Path(__file__).parent / "late_thread_preload.py")
    server = subprocess.Popen(
        [sys.executable, "-m", warm.SERVER, str(sock), "60", late], stderr=subprocess.PIPE
    )
    try:
        assert server.wait(30) == step_server.NOT_SINGLE_THREADED
        assert "unsafe" in (server.stderr.read() if server.stderr else b"").decode()
        assert not sock.exists()
    finally:
        server.kill()
        server.wait()


def test_a_server_is_per_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the preloaded modules saw (interpreter, packages, launchbay's sources, environment) names
    the server; where a shell is and each step's own PYTHONPATH do not."""
    env = {"HOME": "/root", "MLFLOW_TRACKING_URI": "sqlite:///a.db", "PWD": "/a", "PYTHONPATH": "/x"}
    base = step_server.key(sys.executable, env)
    assert step_server.key(sys.executable, {**env, "PWD": "/b", "PYTHONPATH": "/y"}) == base
    assert step_server.key(sys.executable, {**env, "MLFLOW_TRACKING_URI": "sqlite:///b.db"}) != base
    assert step_server.key("/usr/bin/python3", env) != base


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as another user")
def test_another_user_cannot_start_anything_through_the_server() -> None:
    """The state directory is private; even handed the socket, another user is refused by its
    credentials (SO_PEERCRED) and nothing is forked for them."""
    import tempfile
    import time

    with tempfile.TemporaryDirectory(prefix="lb-steps-") as folder:
        Path(folder).chmod(0o755)  # reachable by anyone, unlike a state directory
        sock = Path(folder) / "s.sock"
        server = subprocess.Popen([sys.executable, "-m", warm.SERVER, str(sock), "60", LIGHT])
        try:
            while not sock.exists():
                time.sleep(0.05)
            sock.chmod(0o666)
            code = f"""
import json, os, socket
os.setuid(65534)
s = socket.socket(socket.AF_UNIX)
s.connect({str(sock)!r})
s.sendall(json.dumps({{"op": "start", "launch": {{}}}}).encode() + b"\\n")
try:
    print(repr(s.recv(100)))
except ConnectionResetError:
    print("b''")  # closed before it read the request: refused all the same
"""
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
            assert done.stdout.strip() == "b''", done.stderr  # closed without an answer
            assert step_server.request(sock, {"op": "ping"})["pid"] == server.pid  # its owner is served
        finally:
            server.terminate()
            assert server.wait(10) == 0


def test_a_preload_that_leaves_a_thread_running_makes_steps_start_cold_and_says_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Fork after threads have started is unsafe: the server refuses to serve, no step is forked,
    and every step starts cold with the reason in `disabled`."""
    monkeypatch.delenv(warm.SWITCH, raising=False)
    fresh = warm.Starter(sys.executable, preload=str(Path(__file__).parent / "threaded_preload.py"))
    cwd, env = _project(tmp_path)
    launch = warm.Launch("steps_probe", ["describe"], env, str(cwd), "/dev/null", "/dev/null", "st")
    assert fresh.start(launch) is None
    assert fresh.disabled is not None and "not single-threaded" in fresh.disabled
    assert not fresh.eligible([sys.executable, *warm.RUNNER, "-e", "m:f", "file.py"])
    assert not list(_servers().glob("*.sock"))


def test_where_forking_a_loaded_process_is_unsafe_steps_start_cold_and_say_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(warm.SWITCH, raising=False)
    monkeypatch.setattr(warm.sys, "platform", "darwin")
    mac = warm.Starter()
    assert mac.disabled is not None and mac.disabled.startswith("darwin: forking")
    assert not mac.eligible([sys.executable, *warm.RUNNER, "-e", "m:f", "x"])
    monkeypatch.setattr(warm.sys, "platform", "linux")
    assert warm.Starter().disabled is None
