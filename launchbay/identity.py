"""Who really ran a command: the operating system's account and the CI run, whatever name was claimed.

`--as alice` is a claim; a decision counts only when alice's key signs it. When a decision is
refused (or made), the ledger also keeps who was actually at the keyboard -- the OS user, the
host, and the CI system's own identity of the run -- so that "someone claiming to be someone
else" leaves a trace of who they are.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
from typing import Any

CI_VARIABLES = (
    "GITHUB_ACTOR",
    "GITHUB_TRIGGERING_ACTOR",
    "GITHUB_REPOSITORY",
    "GITHUB_WORKFLOW",
    "GITHUB_RUN_ID",
    "GITLAB_USER_LOGIN",
    "CI_PROJECT_PATH",
    "CI_JOB_ID",
    "BUILDKITE_BUILD_CREATOR",
    "BUILD_USER_ID",
    "ARGO_WORKFLOW_NAME",
)
"""What CI systems set about who started a run (names only ever read, never trusted for access)."""


def ran_by() -> dict[str, Any]:
    """The identity of the process running now: OS user, uid, host, and the CI run's (if any)."""
    user = "?"
    with contextlib.suppress(Exception):
        user = getpass.getuser()
    found: dict[str, Any] = {"os_user": user, "host": socket.gethostname()}
    if hasattr(os, "getuid"):
        found["uid"] = os.getuid()
    ci = {name: os.environ[name] for name in CI_VARIABLES if os.environ.get(name)}
    if ci:
        found["ci"] = ci
    return found
