"""A real headless Chromium (Debian's `chromium`, driven by Playwright) and `launchbay ui` processes
for the tests that look at the release managers' page as a person does.

Screenshots and timings go to $LAUNCHBAY_TEST_ARTIFACTS (default: test-artifacts/ at the
repository's top), kept after the run for people to look at.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness import Launchbay

from launchbay import procs

CHROMIUM = os.environ.get("LAUNCHBAY_CHROMIUM", "/usr/bin/chromium")
ARTEFACTS = Path(
    os.environ.get("LAUNCHBAY_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts")
)


def artefacts(name: str) -> Path:
    """A directory for one test's screenshots and figures."""
    path = ARTEFACTS / name
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium browser (the project's setup installs Debian's package)."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: `make setup` installs Debian's chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def ui(cli: Launchbay, *args: str, timeout: float = 60) -> Iterator[tuple[str, dict[str, Any]]]:
    """`launchbay ui --port 0 --json ARGS`: (its printed address with the token, what it said).
    Stopped with its whole tree at the end, and checked gone."""
    proc = cli.spawn("ui", "--port", "0", "--json", *args)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                line = proc.stdout.readline()
                if not line and proc.poll() is not None:
                    break
                lines.append(line)
                if line.startswith("{"):
                    doc = json.loads(line)
                    yield doc["url"], doc
                    return
        raise AssertionError("`launchbay ui` did not print its address:\n" + "".join(lines))
    finally:
        assert procs.stop(proc.pid) == [], "`launchbay ui` left processes running"
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise AssertionError("`launchbay ui` is still running after being stopped") from None
        if proc.stdout is not None:
            proc.stdout.close()
