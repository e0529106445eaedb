"""Named fault points, for testing what happens between two writes (in the manner of etcd's gofail).

A process started with `LAUNCHBAY_FAULTS="after:promoted=stop"` stops itself (SIGSTOP) the first
time it passes the point `after:promoted`, right after the ledger recorded a promotion and before
anything acted on it; `=kill` makes it die there (SIGKILL: no clean-up of any kind), `=exit` makes
it exit with status 86. Several points are separated by commas. Without the variable (every real
use) `point` costs one dictionary lookup.

Points: `after:<action>` once a ledger write of that action is committed (`after:created`,
`after:step`, `after:promoted`, `after:approved`, `after:rollback`, `after:aborted`, ...), and
the reconciler's `reconcile:started` (a server started), `reconcile:routes` (routes set),
`reconcile:retired` (a server stopped).
"""

from __future__ import annotations

import os
import signal

FAULTS_ENV = "LAUNCHBAY_FAULTS"

_fired: set[str] = set()


def _armed() -> dict[str, str]:
    spec = os.environ.get(FAULTS_ENV, "")
    pairs = (item.split("=", 1) for item in spec.split(",") if "=" in item)
    return {name.strip(): action.strip() for name, action in pairs}


def point(name: str) -> None:
    """Pass the fault point `name`: stop, die or exit here if the environment says so (once)."""
    if FAULTS_ENV not in os.environ or name in _fired:
        return
    action = _armed().get(name)
    if action is None:
        return
    _fired.add(name)
    if action == "stop":
        os.kill(os.getpid(), signal.SIGSTOP)
    elif action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "exit":
        os._exit(86)
