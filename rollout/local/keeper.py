"""Copies of the gateway's listening sockets, kept by the controller so that no single death closes
the port: when the supervisor dies, a new one is started on the very same sockets at once.

The supervisor hands its sockets out over a Unix socket (`supervisor.fetch_sockets`); the keeper
holds them, records itself (`gateway.keeper`: others then wait for it instead of binding the port)
and, when the supervisor that had them is gone, asks the local target to start a new supervisor on
them (`LocalTarget.restart_on`). Connections that arrive in between wait in the listen queue.
"""

from __future__ import annotations

import contextlib
import os
import socket

from launchbay import procs
from launchbay.rollout.local.supervisor import KEEPER, GatewayRecord, KeeperRecord, fetch_sockets
from launchbay.rollout.local.target import LocalTarget


class SocketKeeper:
    """Holds the running supervisor's listening sockets; restarts a dead supervisor on them."""

    def __init__(self, target: LocalTarget) -> None:
        self.target = target
        self._of: tuple[int, float | None] | None = None  # the supervisor they were taken from
        self._sockets: tuple[socket.socket, socket.socket] | None = None

    def check(self) -> str:
        """One look: take copies from a supervisor we have none of; start a new supervisor on the
        copies when theirs is gone. Returns what was done ("" for nothing)."""
        rec = GatewayRecord.read(self.target.gateway_file)
        if rec is not None and rec.running:
            if self._of != (rec.supervisor_pid, rec.supervisor_created):
                self._adopt(rec)
            return ""
        if self._sockets is None:
            return ""
        return self.target.restart_on(self._sockets)

    def _adopt(self, rec: GatewayRecord) -> None:
        got = fetch_sockets(self.target.dir)
        if got is None:
            return  # an older supervisor without the hand-out socket, or one still starting
        if got[0].getsockname()[1] != rec.port:
            for s in got:
                s.close()
            return
        self.close()
        self._of, self._sockets = (rec.supervisor_pid, rec.supervisor_created), got
        me = os.getpid()
        KeeperRecord(me, procs.created(me), rec.port).write(self.target.dir / KEEPER)

    def close(self) -> None:
        """Let the copies go (the port closes with its supervisor from then on)."""
        if self._sockets is not None:
            for s in self._sockets:
                s.close()
        self._of = self._sockets = None
        path = self.target.dir / KEEPER
        mine = KeeperRecord.read(path)
        if mine is not None and mine.pid == os.getpid():
            with contextlib.suppress(OSError):
                path.unlink()
