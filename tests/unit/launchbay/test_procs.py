"""Process identity and lifetime through psutil, the same on Linux and macOS."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import psutil
import pytest

from launchbay import procs


def test_a_process_is_known_by_its_start_time_and_a_zombie_is_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    born = procs.created(child.pid)
    assert born is not None and abs(born - psutil.Process().create_time()) < 3600
    deadline = time.monotonic() + 10
    while procs.created(child.pid) is not None and time.monotonic() < deadline:
        time.sleep(0.02)  # exited, not reaped: a zombie counts as gone
    assert procs.created(child.pid) is None
    child.wait()


def test_the_listener_is_found_where_the_system_lists_sockets_to_root_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def denied(*_a: object, **_k: object) -> None:
        raise psutil.AccessDenied()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        found = procs.listener(port)
        assert found is not None and found.pid == os.getpid()
        monkeypatch.setattr(psutil, "net_connections", denied)  # what macOS does for a user
        found = procs.listener(port)
        assert found is not None and found.pid == os.getpid()
    assert procs.listener(port) is None


CHILD = """
import sys, time
sys.platform = "darwin"  # no PR_SET_PDEATHSIG: the thread must do it
from launchbay import procs
procs.exit_with_parent(0.05)
time.sleep(60)
"""

PARENT = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]])
print(child.pid, flush=True)
import os; os._exit(0)
"""


def test_a_child_ends_with_its_parent_where_the_kernel_is_not_asked_to() -> None:
    out = subprocess.run([sys.executable, "-c", PARENT, CHILD], capture_output=True, text=True, timeout=30)
    pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 10
    while procs.created(pid) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    gone = procs.created(pid) is None
    if not gone:
        procs.stop(pid)
    assert gone, "the orphan outlived its parent"
