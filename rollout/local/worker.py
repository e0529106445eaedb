"""The local gateway's worker process: serves the sockets its supervisor holds, routes from the ledger.

Started by `launchbay.rollout.local.supervisor` (never by hand). At start it derives the routes
from the ledger -- the world its releases call for (`engine.desired`) -- with the
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
import time
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server

from launchbay import procs
from launchbay.home import Home
from launchbay.rollout.engine.desired import desired
from launchbay.rollout.engine.release import Release
from launchbay.rollout.ledger.store import LEDGER_ENV, SqlLedger
from launchbay.rollout.local.choice import Routing
from launchbay.rollout.local.gateway import Gateway
from launchbay.rollout.local.records import BASELINE, record_path, server_record
from launchbay.rollout.local.supervisor import token
from launchbay.rollout.targets.base import Backend, Routes
from launchbay.serving.request_sample import Capture

ACTOR = "launchbay-gateway"

log = logging.getLogger("launchbay.gateway")


def _ledger(home: Home) -> SqlLedger | None:
    if os.environ.get(LEDGER_ENV) or SqlLedger.default_path(home).exists():
        return SqlLedger.for_home(home)
    return None


@dataclass(frozen=True)
class Start:
    """What a worker starts serving with."""

    routes: Routes
    generation: int
    source: str
    """Where the routes came from, in words (the ledger, or the file and why)."""
    release: Release | None


def initial_routes(gateway: Gateway, home: Home, model: str) -> Start:
    """The routes to start with: the ledger's (`desired`), the routes file only when the ledger
    cannot be read or its routes cannot be served."""
    assert gateway.state_file is not None and gateway.servers is not None
    servers = gateway.servers

    def backend(version: str) -> Backend:
        rec = server_record(servers, version)
        if rec is None:
            raise LookupError(f"version {version} has no server record")
        return Backend(version=version, url=rec.url)

    from_file, file_generation = Routes(), 0
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError, AttributeError):
        saved = json.loads(gateway.state_file.read_text())
        from_file, file_generation = Routes.from_dict(saved), int(saved.get("generation") or 0)
    if gateway.unregistered(from_file):
        log.warning("routes file names servers that are not launchbay's: ignored (%s)", from_file)
        from_file = Routes()
    try:
        ledger = _ledger(home)
        generation, releases = ledger.snapshot(model) if ledger is not None else (0, [])
    except Exception as exc:  # the ledger's database is away: the file is all there is
        log.warning("the ledger could not be read (%s): starting from the routes file", exc)
        return Start(from_file, file_generation, "file (ledger unreadable)", None)
    if not releases:
        return Start(from_file, file_generation, "file (no release in the ledger)", None)
    def baseline(version: str) -> Backend:
        rec = procs.ProcessRecord.read(record_path(servers, version, BASELINE))
        if rec is None:
            raise LookupError(f"version {version} has no baseline server record")
        return Backend(version=version, url=rec.url)

    want = desired(model, generation, releases, time.time(), grace_period=0.0)
    newest = releases[0]
    try:
        wanted = want.routes(backend, baseline)
    except LookupError as exc:
        log.warning("the ledger's routes cannot be served (%s): starting from the routes file", exc)
        return Start(from_file, file_generation, f"file ({exc})", newest)
    if wanted != from_file:
        log.warning("routes file disagreed with the ledger (%s): the ledger's routes win", newest.name)
    return Start(wanted, generation, f"ledger ({newest.name}: {newest.phase.value})", newest)


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


class _JsonErrors(RequestHandler):
    """aiohttp's connection handler, answering requests it cannot parse (a 400 before any route)
    in the gateway's JSON error shape instead of plain text."""

    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:  # fmt: skip
        answer = super().handle_error(request, status, exc, message)
        if not 400 <= status < 500:
            return answer
        said = (message or HTTPStatus(status).phrase).splitlines()[0][:300]
        out = web.json_response({"error": f"malformed request: {said}"}, status=status)
        out.force_close()
        return out


class _Server(Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrors(self, loop=self._loop, **self._kwargs)


class _Runner(web.AppRunner):
    """An AppRunner whose connections answer parse errors as JSON."""

    async def _make_server(self) -> Server:
        server = await super()._make_server()
        server.__class__ = _Server  # same state, one method more: aiohttp builds it, we only answer
        return server


async def _serve(gateway: Gateway, client: socket.socket, admin: socket.socket) -> None:
    # keepalive_timeout closes a connection idle that long: before its first request is complete
    # (a client that connects and sends nothing, or half its headers) and between requests.
    # lingering_time: after answering a request whose body never came whole (408), read what still
    # arrives that long before closing (so the client gets the answer, not a reset), no longer.
    idle, linger = gateway.idle_timeout, min(gateway.body_timeout, 2.0)
    runners = [
        _Runner(gateway.client_app(), access_log=None, keepalive_timeout=idle, lingering_time=linger),
        _Runner(gateway.admin_app(), keepalive_timeout=idle, lingering_time=linger),
    ]
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
    parser.add_argument("--idle-timeout", type=float, default=15.0)
    parser.add_argument("--body-timeout", type=float, default=10.0)
    parser.add_argument("--repeat-window", type=float, default=10.0)
    parser.add_argument("--routing", default="", help="pin header and stickiness (JSON)")
    parser.add_argument("--capture", default="", help="the sample of requests kept for replay (JSON)")
    parser.add_argument("--standby-fd", type=int, help="wait on this pipe, imports done, to take over")
    parser.add_argument("--ready-fd", type=int, help="a standby says on this pipe that it is ready")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    os.umask(0o077)
    procs.exit_with_parent()  # the supervisor's death ends its workers (Linux: the kernel does)
    if args.standby_fd is not None:
        args.restart_reason = _wait_for_takeover(args.standby_fd, args.ready_fd)
    home = Home(args.home)
    gateway = Gateway(
        args.dir / "routes.json",
        queue_size=args.queue_size,
        servers=args.dir / "servers",
        hedge_factor=args.hedge_factor,
        hedge_floor=args.hedge_floor,
        idle_timeout=args.idle_timeout,
        body_timeout=args.body_timeout,
        repeat_window=args.repeat_window,
        token=token(args.dir),
        routing=Routing.from_json(args.routing),
        capture=Capture.from_json(args.capture),
    )
    start = initial_routes(gateway, home, args.model)
    routes, source = start.routes, start.source
    gateway.routes, gateway.generation = routes, start.generation
    gateway.metrics.weight.set(routes.canary_weight)
    gateway.metrics.prime(routes)
    gateway.persist(routes)
    log.info("serving with routes from the %s (generation %s): %s", source, start.generation,
             routes.to_dict())  # fmt: skip
    if args.restart_reason:
        _record_restart(home, start.release, args.restart_reason, routes, source)
    client = socket.socket(fileno=args.client_fd)
    admin = socket.socket(fileno=args.admin_fd)
    try:
        import uvloop  # libuv's event loop: the proxy's per-request overhead is mostly the loop's

        uvloop.run(_serve(gateway, client, admin))
    except ImportError:
        asyncio.run(_serve(gateway, client, admin))


if __name__ == "__main__":
    main()
