"""The local gateway's worker process: serves the sockets its supervisor holds, routes from the ledger.

Started by `launchbay.rollout.local.supervisor` (never by hand). At start it derives the routes
from the ledger -- the model's newest release, its phase and step (`routing.wanted`) -- with the
backends taken from launchbay's own server records. The persisted routes file only stands in when
the ledger cannot be read, and is then checked against the server records like any route change;
when the two disagree, the ledger wins and the log says so. A worker started to replace one that
died records that in the ledger (`gateway-restarted`, with the routes it took), so the event log
tells on-call what happened to traffic.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
from pathlib import Path

from aiohttp import web

from launchbay import procs
from launchbay.home import Home
from launchbay.rollout.engine import desired as routing
from launchbay.rollout.engine.release import Release
from launchbay.rollout.ledger.store import LEDGER_ENV, SqlLedger
from launchbay.rollout.local.gateway import Gateway
from launchbay.rollout.local.supervisor import token
from launchbay.rollout.targets.base import Backend, Routes

ACTOR = "launchbay-gateway"

log = logging.getLogger("launchbay.gateway")


def _ledger(home: Home) -> SqlLedger | None:
    if os.environ.get(LEDGER_ENV) or SqlLedger.default_path(home).exists():
        return SqlLedger.for_home(home)
    return None


def initial_routes(gateway: Gateway, home: Home, model: str) -> tuple[Routes, str, Release | None]:
    """The routes to start with, where they came from, and the release they follow (if any)."""
    assert gateway.state_file is not None and gateway.servers is not None
    servers = gateway.servers

    def backend(version: str) -> Backend:
        rec = procs.ProcessRecord.read(servers / f"v{version}.json")
        if rec is None:
            raise LookupError(f"version {version} has no server record")
        return Backend(version=version, url=rec.url)

    from_file = Routes()
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        from_file = Routes.from_dict(json.loads(gateway.state_file.read_text()))
    if gateway.unregistered(from_file):
        log.warning("routes file names servers that are not launchbay's: ignored (%s)", from_file)
        from_file = Routes()
    try:
        ledger = _ledger(home)
        newest = next(iter(ledger.releases(model)), None) if ledger is not None else None
    except Exception as exc:  # the ledger's database is away: the file is all there is
        log.warning("the ledger could not be read (%s): starting from the routes file", exc)
        return from_file, "file (ledger unreadable)", None
    if newest is None:
        return from_file, "file (no release in the ledger)", None
    try:
        wanted = routing.wanted(newest, backend)
    except LookupError as exc:
        log.warning("the ledger's routes cannot be served (%s): starting from the routes file", exc)
        return from_file, f"file ({exc})", newest
    if wanted != from_file:
        log.warning("routes file disagreed with the ledger (%s): the ledger's routes win", newest.name)
    return wanted, f"ledger ({newest.name}: {newest.phase.value})", newest


def _record_restart(home: Home, release: Release | None, reason: str, routes: Routes, source: str) -> None:
    if release is None:
        return
    with contextlib.suppress(Exception):  # recording must never keep clients waiting
        ledger = _ledger(home)
        if ledger is not None:
            ledger.record(
                ledger.get(release.id),
                actor=ACTOR,
                action="gateway-restarted",
                reason=reason,
                evidence={"routes": routes.to_dict(), "routes_from": source, "worker_pid": os.getpid()},
            )


async def _serve(gateway: Gateway, client: socket.socket, admin: socket.socket) -> None:
    runners = [web.AppRunner(gateway.client_app(), access_log=None), web.AppRunner(gateway.admin_app())]
    for runner, sock in zip(runners, (client, admin), strict=True):
        await runner.setup()
        await web.SockSite(runner, sock).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for runner in runners:
            await runner.cleanup()


def _wait_for_takeover(fd: int, ready: int | None) -> str:
    """A standby's wait: everything imported, nothing read yet (the routes come from the ledger at
    takeover, not now). The supervisor writes why it is needed; end of file means it is gone."""
    import uvloop  # noqa: F401 (imported now, not on the takeover's path)

    if ready is not None:
        with contextlib.suppress(OSError):
            os.write(ready, b"ready\n")
        os.close(ready)

    reason = b""
    while not reason.endswith(b"\n"):
        chunk = os.read(fd, 4096)
        if not chunk:
            raise SystemExit(0)  # the supervisor stopped: no worker is needed
        reason += chunk
    os.close(fd)
    return reason.decode(errors="replace").strip()


def main() -> None:
    """Run one gateway worker on the supervisor's sockets."""
    parser = argparse.ArgumentParser(description="launchbay gateway worker (started by its supervisor)")
    parser.add_argument("--client-fd", type=int, required=True)
    parser.add_argument("--admin-fd", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--restart-reason", default="")
    parser.add_argument("--queue-size", type=int, default=1000)
    parser.add_argument("--hedge-factor", type=float, default=4.0)
    parser.add_argument("--hedge-floor", type=float, default=0.5)
    parser.add_argument("--standby-fd", type=int, help="wait on this pipe, imports done, to take over")
    parser.add_argument("--ready-fd", type=int, help="a standby says on this pipe that it is ready")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    os.umask(0o077)
    if args.standby_fd is not None:
        args.restart_reason = _wait_for_takeover(args.standby_fd, args.ready_fd)
    home = Home(args.home)
    gateway = Gateway(
        args.dir / "routes.json",
        queue_size=args.queue_size,
        servers=args.dir / "servers",
        hedge_factor=args.hedge_factor,
        hedge_floor=args.hedge_floor,
        token=token(args.dir),
    )
    routes, source, release = initial_routes(gateway, home, args.model)
    gateway.routes = routes
    gateway.metrics.weight.set(routes.canary_weight)
    gateway.persist(routes)
    log.info("serving with routes from the %s: %s", source, routes.to_dict())
    if args.restart_reason:
        _record_restart(home, release, args.restart_reason, routes, source)
    client = socket.socket(fileno=args.client_fd)
    admin = socket.socket(fileno=args.admin_fd)
    try:
        import uvloop  # libuv's event loop: the proxy's per-request overhead is mostly the loop's

        uvloop.run(_serve(gateway, client, admin))
    except ImportError:
        asyncio.run(_serve(gateway, client, admin))


if __name__ == "__main__":
    main()
