"""Where the local target keeps what it knows of each version's server, and the one way to read it.

`servers/v<N>.json` is the record of version N's server (its PID, start time, port, log) and
`servers/spawn-v<N>.json` how to start it again when it scaled to zero. A version is a registry
version (a number) or nothing: the path is built only from one, and read only if it resolves
inside the servers directory -- a label like `5/../../elsewhere/evil`, or a record that is a
symlink out of the state directory, names no server of launchbay's.
"""

from __future__ import annotations

from pathlib import Path

from launchbay import procs
from launchbay.rollout.targets.base import check_version


def directory(home_root: Path, model: str) -> Path:
    """The local target's folder of `model` in the state directory (records, routes, servers)."""
    return home_root / "local" / model


BASELINE = "baseline-v"
"""The prefix of a baseline server's record (a second server of stable's version)."""


def record_path(servers: Path, version: str, prefix: str = "v") -> Path:
    """The file of `version` in `servers` (`prefix` "spawn-v" for a spawn spec, BASELINE for the
    baseline server).

    Raises:
        ValueError: `version` is not a registry version, or the file resolves outside `servers`.
    """
    check_version(version)
    path = servers / f"{prefix}{version}.json"
    if not path.resolve().is_relative_to(servers.resolve()):
        raise ValueError(f"{path} resolves outside {servers}")
    return path


def server_record(servers: Path, version: str) -> procs.ProcessRecord | None:
    """launchbay's record of `version`'s server, or None (none, or not a version of launchbay's)."""
    try:
        return procs.ProcessRecord.read(record_path(servers, version))
    except ValueError:
        return None
