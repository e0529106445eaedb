"""Starting the page: a socket on loopback (or where the user explicitly asked), a fresh token,
the notifier thread, and uvicorn on that socket until interrupted."""

from __future__ import annotations

import ipaddress
import secrets
import socket
from collections.abc import Callable
from typing import cast

from launchbay.desk.app import Desk, app
from launchbay.desk.signing import Signer
from launchbay.desk.timeline import RangeSource
from launchbay.errors import UsageError
from launchbay.rollout.ledger import notify
from launchbay.rollout.wiring import Wired

LOOPBACK = "127.0.0.1"


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: a free one).

    Raises:
        UsageError: the address cannot be bound (in use, not this machine's).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"--host {host} --port {port}: cannot listen there ({exc.strerror})") from None
    sock.listen(128)
    return sock


def allowed_hosts(host: str, port: int) -> set[str] | None:
    """The Host headers requests may carry (None: any, for a wildcard bind the user asked for)."""
    if host in ("0.0.0.0", "::"):
        return None
    names = {host, f"[{host}]" if ":" in host else host}
    if is_loopback(host):
        names |= {"127.0.0.1", "localhost", "[::1]"}
    return {f"{n}:{port}" for n in names}


def serve(
    ctx: Wired,
    signer: Signer,
    source: RangeSource | None,
    sock: socket.socket,
    ready: Callable[[str], None],
) -> None:
    """Serve the page on `sock` until interrupted; `ready(url)` once it listens (the URL holds
    the token)."""
    import uvicorn

    host, port = cast(tuple[str, int], sock.getsockname()[:2])
    token = secrets.token_urlsafe(24)
    desk = Desk(ctx, signer, token, allowed_hosts(host, port), source)
    shown = LOOPBACK if host in ("0.0.0.0", "::") else (f"[{host}]" if ":" in host else host)
    notifier = notify.notifier(ctx.ledger, ctx.cfg)
    if notifier is not None:
        notifier.start()
    config = uvicorn.Config(app(desk), log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    original = server.startup

    async def startup(sockets: list[socket.socket] | None = None) -> None:
        await original(sockets=sockets)
        ready(f"http://{shown}:{port}/?token={token}")

    server.startup = startup  # type: ignore[method-assign]
    try:
        server.run(sockets=[sock])
    finally:
        if notifier is not None:
            notifier.stop(flush=ctx.cfg.notifications.timeout)
