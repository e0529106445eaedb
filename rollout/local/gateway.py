"""launchbay's gateway for the local target: one stable address in front of the model servers.

* Two channels. Clients reach the proxy (and `/metrics`) on the client port; routes change only on
  a separate loopback admin port, and only with the per-install token from a file readable by the
  state directory's owner (`GET`/`PUT /routes`, `Authorization: Bearer ...`). Nothing on the client
  port touches the routes: `/_launchbay/...` there is a 404.
* Routes: a stable backend and optionally a canary with a weight (percent) and/or mirroring. A
  backend must be launchbay's own registered server of that version (its record under the
  servers directory names the port); anything else is refused (403), counted and logged. A
  request keeps the backend it was sent to, so changing weights, promoting and rolling back lose no
  in-flight request (the target drains a version's in-flight requests, shown by `GET /routes`,
  before stopping its server).
* Shadow: with `mirror`, a copy of each request to stable is queued for the candidate. The queue is
  bounded and the user's response never waits for it: a slow or dead shadow only fills the queue,
  and overflow is dropped and counted. The candidate's answer is compared with stable's answer to
  the same request: predicted-class agreement and score difference per row (classifiers), the
  relative difference of the values (regressors).
* A request the canary fails (5xx, or unreachable) is retried once on stable: predictions are pure
  functions of their input, so the user gets an answer while the failure still counts against the
  canary. The response says so in `X-Launchbay-Retried-From`.
* Client mistakes stay the client's: a body that is not JSON is a 415 answered here, never sent to
  a model and never counted against a version.
* Which version answers: a tester's pin, a sticky user's first version, else the weights
  (`launchbay.rollout.local.choice`). Pinned requests are counted apart (role `pinned`).
* Every response carries `X-Launchbay-Version`. `/metrics` exports requests, errors and latency
  per version and role (primary or shadow) plus the shadow comparison.

The process around it (a supervisor holding the sockets, restarting a worker that dies, routes
taken from the ledger at start) is `launchbay.rollout.local.worker`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import random
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from launchbay import procs
from launchbay.files import write_private
from launchbay.rollout.local import feedback
from launchbay.rollout.local.capture import CAPTURE_FILE, Recorder
from launchbay.rollout.local.choice import PINNED, Chooser, Routing
from launchbay.rollout.local.launcher import Launcher
from launchbay.rollout.local.records import BASELINE, record_path, server_record
from launchbay.rollout.local.repeats import WINDOW as REPEAT_WINDOW
from launchbay.rollout.local.repeats import Seen, key, rows_of
from launchbay.rollout.metrics import names
from launchbay.rollout.metrics.compare import disagree, row_shift
from launchbay.rollout.targets.base import LATENCY_BUCKETS, Backend, Routes
from launchbay.serving.guard import is_json
from launchbay.serving.request_sample import Capture

log = logging.getLogger("launchbay.gateway")

VERSION_HEADER = "X-Launchbay-Version"
REQUEST_ID_HEADER = "X-Request-Id"
RETRIED_HEADER = "X-Launchbay-Retried-From"
ROUTES = "/routes"
"""The admin channel's one resource (on the admin port, never on the client port)."""
RESERVED = "/_launchbay"
"""Client-port paths never proxied to a model (the admin API once lived here)."""
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}


@dataclass
class _Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            names.REQUESTS,
            "Requests answered, per version, role and status class",
            ["version", "role", "code"],
            registry=r,
        )
        self.latency = Histogram(
            names.DURATION,
            "Backend answer time",
            ["version", "role"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inflight = Gauge(names.INFLIGHT, "Requests being answered", ["version"], registry=r)
        self.weight = Gauge(names.CANARY_WEIGHT, "Current canary weight (percent)", registry=r)
        self.retried = Counter(
            names.CANARY_RETRIES,
            "Canary requests that failed (5xx) and were answered by stable instead",
            ["version"],
            registry=r,
        )
        self.cold_starts = Counter(
            names.COLD_STARTS, "Servers started for a waiting request", ["version"], registry=r
        )
        self.cold_start_seconds = Histogram(
            names.COLD_START_SECONDS,
            "From starting a stopped server to its first ready answer",
            ["version"],
            buckets=(0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60),
            registry=r,
        )
        self.cold_start_failures = Counter(
            names.COLD_START_FAILURES,
            "Cold starts that did not become ready in time",
            ["version"],
            registry=r,
        )
        self.scaled_to_zero = Counter(
            names.SCALED_TO_ZERO, "Servers stopped after being idle", ["version"], registry=r
        )
        self.shadow_dropped = Counter(
            names.SHADOW_DROPPED, "Mirrored requests dropped: queue full", registry=r
        )
        self.rejected = Counter(
            names.REJECTED,
            "Client requests answered by the gateway itself (client mistakes: never a version's)",
            ["reason"],
            registry=r,
        )
        self.route_refusals = Counter(
            names.ROUTE_REFUSALS,
            "Route changes refused: no token, or a backend that is not launchbay's server",
            ["reason"],
            registry=r,
        )
        self.compared = Counter(
            names.SHADOW_COMPARED,
            "Rows answered by both stable and candidate",
            ["stable", "candidate"],
            registry=r,
        )
        self.repeated = Counter(
            names.SHADOW_REPEATED,
            "Rows answered by both that were compared before (each distinct row is compared once)",
            ["stable", "candidate"],
            registry=r,
        )
        self.disagreements = Counter(
            names.SHADOW_DISAGREEMENTS,
            "Rows whose predicted class differs",
            ["stable", "candidate"],
            registry=r,
        )
        self.score_diff = Histogram(
            names.SHADOW_SCORE_DIFF,
            "Absolute score difference per compared row",
            ["stable", "candidate"],
            buckets=(0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
            registry=r,
        )

    def prime(self, routes: Routes) -> None:
        """Create at zero the series the analysis will ask about under `routes`.

        Prometheus' increase() counts from a series' first sample: a counter born with its first
        5xx (or its first compared row) hides that event, and the verdict waits a scrape or two
        for what was already known. Existing series are left as they are.
        """
        series = [(b.version, "primary") for b in (routes.stable, routes.canary) if b is not None]
        if routes.baseline is not None:
            series.append((routes.baseline.version, "baseline"))
        if routes.mirror and routes.canary is not None:
            series.append((routes.canary.version, "shadow"))
        for version, role in series:
            for code in ("2xx", "4xx", "5xx"):
                self.requests.labels(version, role, code)
            self.latency.labels(version, role)
        if routes.mirror and routes.stable is not None and routes.canary is not None:
            pair = (routes.stable.version, routes.canary.version)
            self.compared.labels(*pair)
            self.repeated.labels(*pair)
            self.disagreements.labels(*pair)
            self.score_diff.labels(*pair)


MAX_BODY = 16 * 1024 * 1024
"""The largest request body the gateway takes (413 above it)."""
BODY_TIMEOUT = 10.0
"""Seconds a client has to send a request's body once its headers arrived (408 after)."""
IDLE_TIMEOUT = 15.0
"""Seconds a connection may stay idle -- before its first request's headers are complete, or
between requests -- before the gateway closes it (aiohttp's keep-alive timeout covers both)."""


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error the gateway answers itself has the service's JSON shape (`{"error": ...}`):
    aiohttp's own (413 too large, 405, 404 of a route) would be plain text."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if isinstance(exc, web.HTTPRequestEntityTooLarge):
            message = f"the request body is larger than {MAX_BODY // (1024 * 1024)} MB"
        else:
            message = exc.reason if exc.text is None or exc.text.startswith(f"{exc.status}:") else exc.text
        return web.json_response({"error": message}, status=exc.status, headers=_kept(exc.headers))


def _kept(headers: Any) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() in {"allow", "retry-after"}}


def _error(message: str) -> bytes:
    """A gateway-made error body, in the shape the service's errors have."""
    return json.dumps({"error": message}).encode()


def _mirrored(routes: Routes) -> tuple[str, str] | None:
    """The (stable, candidate) pair a shadow phase compares, or None when nothing is mirrored."""
    if not routes.mirror or routes.stable is None or routes.canary is None:
        return None
    return routes.stable.version, routes.canary.version


@dataclass
class _Mirror:
    candidate: Backend
    stable_version: str
    path: str
    query: str
    body: bytes
    headers: dict[str, str]
    stable_body: bytes
    stable_ok: bool


class Gateway:
    """The proxy's state and handlers.

    Args:
        state_file: where the routes are persisted (a restart may start from it, see gatewayd).
        servers: the local target's server records: the only backends routes may name, and the
            spawn specs of versions that scale to zero.
        token: the admin channel's bearer token (None: the admin app refuses every change).
        routes: the routes to start with.
    """

    def __init__(
        self,
        state_file: Path | None = None,
        queue_size: int = 1000,
        shadow_workers: int = 4,
        timeout: float = 30.0,
        servers: Path | None = None,
        token: str | None = None,
        routes: Routes | None = None,
        hedge_factor: float = 4.0,
        hedge_floor: float = 0.5,
        generation: int = 0,
        body_timeout: float = BODY_TIMEOUT,
        idle_timeout: float = IDLE_TIMEOUT,
        repeat_window: float = REPEAT_WINDOW,
        routing: Routing | None = None,
        capture: Capture | None = None,
    ) -> None:
        self.state_file = state_file
        self.servers = servers
        self.token = token
        self.routes = routes or Routes()
        self.generation = generation
        """The ledger generation the routes were derived from: older routes are refused."""
        self.body_timeout, self.idle_timeout = body_timeout, idle_timeout
        self.metrics = _Metrics()
        self.metrics.weight.set(self.routes.canary_weight)
        self.metrics.prime(self.routes)
        self.queue: asyncio.Queue[_Mirror] = asyncio.Queue(maxsize=queue_size)
        self.shadow_workers = shadow_workers
        self.timeout = timeout
        self.hedge_factor, self.hedge_floor = hedge_factor, hedge_floor
        self._stable_latencies: deque[float] = deque(maxlen=512)
        self._stable_p99: float | None = None
        self._p99_at = 0.0
        self.inflight: dict[str, int] = {}
        self._session: aiohttp.ClientSession | None = None
        self._workers: list[asyncio.Task[None]] = []
        self.launcher = Launcher(servers, self.metrics, self.inflight) if servers is not None else None
        self.repeat_window = repeat_window
        self._seen = Seen(repeat_window)
        self.chooser = Chooser(routing)
        self.recorder: Recorder | None = None
        if capture is not None and capture.size > 0 and state_file is not None:
            self.recorder = Recorder(capture, state_file.parent / CAPTURE_FILE)
        self.feedback = feedback.Receiver(state_file.parent) if state_file is not None else None

    # -- lifecycle --------------------------------------------------------------------------

    def client_app(self) -> web.Application:
        """What clients reach: the proxy and `/metrics` (Prometheus scrapes it)."""
        app = web.Application(client_max_size=MAX_BODY, middlewares=[json_errors])
        app.router.add_get("/metrics", self.get_metrics)
        if self.feedback is not None:
            app.router.add_post(feedback.PATH, self.feedback.post)
        app.router.add_route("*", RESERVED + "{tail:.*}", self.reserved)
        app.router.add_route("*", "/{tail:.*}", self.proxy)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    def admin_app(self) -> web.Application:
        """The control channel: the routes, behind the token."""
        app = web.Application(client_max_size=1024 * 1024, middlewares=[json_errors])
        app.router.add_get(ROUTES, self.get_routes)
        app.router.add_put(ROUTES, self.put_routes)
        return app

    async def _start(self, _app: web.Application) -> None:
        connector = aiohttp.TCPConnector(limit=256, keepalive_timeout=30)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout)
        )
        self._workers = [asyncio.create_task(self._shadow_worker()) for _ in range(self.shadow_workers)]
        if self.launcher is not None:
            self._workers.append(asyncio.create_task(self.launcher.reap()))
        if self.recorder is not None:
            self._workers.append(asyncio.create_task(self._flush_capture()))

    async def _flush_capture(self) -> None:
        assert self.recorder is not None
        while True:
            await asyncio.sleep(2.0)
            try:
                self.recorder.flush()
            except OSError as exc:  # a full disk must not stop the gateway
                log.warning("capture not written: %s", exc)

    async def _stop(self, _app: web.Application) -> None:
        for w in self._workers:
            w.cancel()
        if self._session is not None:
            await self._session.close()

    # -- admin ------------------------------------------------------------------------------

    def _authorised(self, request: web.Request) -> bool:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        return self.token is not None and hmac.compare_digest(given.encode(), self.token.encode())

    async def get_routes(self, request: web.Request) -> web.Response:
        """Current routes and in-flight requests per version."""
        if not self._authorised(request):
            self.metrics.route_refusals.labels("token").inc()
            return web.json_response({"error": "the admin channel needs launchbay's token"}, status=401)
        return web.json_response(
            {
                **self.routes.to_dict(),
                "generation": self.generation,
                "inflight": self.inflight,
                "shadow_queue": self.queue.qsize(),
            }
        )

    async def put_routes(self, request: web.Request) -> web.Response:
        """Replace the routes (persisted first, so a restart keeps them); only launchbay's servers."""
        if not self._authorised(request):
            self.metrics.route_refusals.labels("token").inc()
            log.warning("route change refused: no valid token (from %s)", request.remote)
            return web.json_response({"error": "the admin channel needs launchbay's token"}, status=401)
        try:
            body = await request.json()
            routes = Routes.from_dict(body)
            generation = body.get("generation")
            generation = None if generation is None else int(generation)
        except (ValueError, TypeError, KeyError, AttributeError, json.JSONDecodeError) as exc:
            return web.json_response({"error": f"invalid routes: {exc}"}, status=400)
        if generation is not None and generation < self.generation:
            self.metrics.route_refusals.labels("stale").inc()
            log.warning("route change refused: from ledger generation %s, these follow %s", generation,
                        self.generation)  # fmt: skip
            return web.json_response(
                {
                    "error": f"stale routes: derived from ledger generation {generation}, the gateway "
                    f"follows generation {self.generation}",
                    "generation": self.generation,
                },
                status=409,
            )
        if problems := self.unregistered(routes):
            self.metrics.route_refusals.labels("backend").inc()
            log.warning("route change refused: %s", "; ".join(problems))
            return web.json_response({"error": "refused: " + "; ".join(problems)}, status=403)
        if generation is not None:
            self.generation = generation
        self.persist(routes)
        if _mirrored(routes) != _mirrored(self.routes):
            self._seen = Seen(self.repeat_window)  # a new shadow phase: its rows count afresh
        self.routes = routes
        self.metrics.weight.set(routes.canary_weight)
        self.metrics.prime(routes)
        return web.json_response(routes.to_dict())

    def unregistered(self, routes: Routes) -> list[str]:
        """Backends of `routes` that are not launchbay's registered server of their version."""
        problems = []
        if routes.baseline is not None:
            try:
                path = record_path(self.servers, routes.baseline.version, BASELINE) if self.servers else None
            except ValueError:
                path = None  # not a version: no server of launchbay's
            rec = procs.ProcessRecord.read(path) if path is not None else None
            if rec is None or routes.baseline.url != rec.url:
                problems.append(f"{routes.baseline.url} is not launchbay's baseline server of version "
                                f"{routes.baseline.version}")  # fmt: skip
        for b in (routes.stable, routes.canary):
            if b is None:
                continue
            rec = server_record(self.servers, b.version) if self.servers else None
            if rec is None:
                problems.append(f"version {b.version} has no server of launchbay's")
            elif b.url != rec.url:
                problems.append(f"{b.url} is not launchbay's server of version {b.version} ({rec.url})")
        return problems

    def persist(self, routes: Routes) -> None:
        """Write the routes atomically (a crash never leaves half a file)."""
        if self.state_file is not None:
            write_private(self.state_file, json.dumps({**routes.to_dict(), "generation": self.generation}))

    async def get_metrics(self, _request: web.Request) -> web.Response:
        """Prometheus exposition of the gateway's metrics."""
        return web.Response(
            body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def reserved(self, _request: web.Request) -> web.Response:
        """Launchbay's own paths are not served on the client port."""
        return web.json_response({"error": "not found"}, status=404)

    # -- traffic ----------------------------------------------------------------------------

    def canary_deadline(self) -> float:
        """How long a candidate may take to answer: `hedge_factor` x stable's recent p99 (at least
        `hedge_floor`, at most the backend timeout). Past it the request is answered by stable,
        and the candidate's answer counts as a failure (504): a hung candidate costs each client
        one short wait and is rolled back on its error rate, not after the 30 s timeout."""
        now = time.monotonic()
        if self._stable_latencies and now - self._p99_at > 0.5:
            ordered = sorted(self._stable_latencies)
            self._stable_p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
            self._p99_at = now
        if self._stable_p99 is None:
            return self.timeout  # nothing known of stable yet: no basis for a shorter deadline
        return min(self.timeout, max(self.hedge_floor, self.hedge_factor * self._stable_p99))

    async def proxy(self, request: web.Request) -> web.StreamResponse:
        """Forward a client request to stable or canary; queue a mirror copy when shadowing."""
        routes = self.routes  # one snapshot per request: a route change mid-request changes nothing
        if routes.stable is None:
            return web.json_response({"error": "no model version is deployed"}, status=503)
        declared = "Content-Type" in request.headers
        if request.method == "POST" and declared and not is_json(request.content_type):
            self.metrics.rejected.labels("content-type").inc()
            return web.json_response(
                {"error": f"Content-Type {request.content_type!r} is not supported: send application/json"},
                status=415,
            )
        choice = self.chooser.choose(routes, request.headers, request.cookies, random.random() * 100)
        if choice.refusal is not None or choice.backend is None:
            self.metrics.rejected.labels("pin").inc()
            return web.json_response({"error": f"pinned: {choice.refusal}"}, status=409)
        backend, pinned = choice.backend, choice.role == PINNED
        try:
            async with asyncio.timeout(self.body_timeout):
                body = await request.read()
        except TimeoutError:
            self.metrics.rejected.labels("slow-body").inc()
            slow = web.json_response(
                {"error": f"the request body did not arrive within {self.body_timeout:g}s"}, status=408
            )
            slow.force_close()  # its connection is not worth keeping: the rest of the body may never come
            return slow
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        # Each request has an id (the client's, when it sent a usable one): the model server's
        # answer log keeps it, and labels come back by it (POST /feedback).
        request_id = feedback.request_id(headers)
        headers[REQUEST_ID_HEADER] = request_id
        if self.recorder is not None and request.method == "POST" and not pinned:
            self.recorder.add(body)
        # A tester pinned to the candidate sees what it does: no deadline, no retry, no mirror.
        deadline = self.canary_deadline() if backend is routes.canary and not pinned else None
        status, resp_headers, payload = await self._forward(
            backend, request.method, request.path_qs, body, headers, role=choice.role, deadline=deadline
        )
        if backend is routes.canary and not pinned and status >= 500 and routes.stable is not None:
            # A prediction is a pure function of its input, so a canary's failure is retried once
            # on stable: the user gets stable's answer, while the canary's failure stays counted
            # in its metrics (which is what rolls it back).
            self.metrics.retried.labels(backend.version).inc()
            failed_version, backend = backend.version, routes.stable
            status, resp_headers, payload = await self._forward(
                backend, request.method, request.path_qs, body, headers, role="primary"
            )
            resp_headers[RETRIED_HEADER] = failed_version
        if (
            routes.mirror
            and routes.canary is not None
            and backend is routes.stable
            and not pinned
            and request.method == "POST"
        ):
            item = _Mirror(
                routes.canary,
                routes.stable.version,
                request.path,
                request.query_string,
                body,
                headers,
                payload,
                200 <= status < 300,
            )
            try:
                self.queue.put_nowait(item)
            except asyncio.QueueFull:
                self.metrics.shadow_dropped.inc()
        out = web.Response(status=status, body=payload, headers=resp_headers)
        out.headers[VERSION_HEADER] = backend.version
        out.headers[REQUEST_ID_HEADER] = request_id
        if choice.cookie is not None and RETRIED_HEADER not in resp_headers:
            # Given the candidate but answered by stable (it failed): not given it, so not kept on it.
            out.set_cookie(self.chooser.routing.sticky_cookie, choice.cookie, path="/", httponly=True,
                           samesite="Lax")  # fmt: skip
        return out

    async def _forward(
        self,
        backend: Backend,
        method: str,
        path_qs: str,
        body: bytes,
        headers: dict[str, str],
        role: str,
        deadline: float | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        assert self._session is not None
        if self.launcher is not None and not await self.launcher.ensure_up(backend.version):
            self.metrics.requests.labels(backend.version, role, "5xx").inc()
            starting = _error(f"model version {backend.version} is starting; retry shortly")
            return 503, {"Retry-After": "5", "Content-Type": "application/json"}, starting
        self.inflight[backend.version] = self.inflight.get(backend.version, 0) + 1
        self.metrics.inflight.labels(backend.version).inc()
        start = time.perf_counter()
        limit = aiohttp.ClientTimeout(total=deadline) if deadline is not None else None
        try:
            async with self._session.request(
                method, backend.url + path_qs, data=body, headers=headers, timeout=limit
            ) as r:
                payload = await r.read()
                status = r.status
                resp_headers = {k: v for k, v in r.headers.items() if k.lower() not in _HOP_BY_HOP}
        except TimeoutError:
            waited = deadline if deadline is not None else self.timeout
            status = 504
            payload = _error(f"model version {backend.version} did not answer within {waited:.3g}s")
            resp_headers = {"Content-Type": "application/json"}
        except aiohttp.ClientError as exc:
            status = 502
            payload = _error(f"model version {backend.version} unavailable: {type(exc).__name__}")
            resp_headers = {"Content-Type": "application/json"}
        finally:
            self.inflight[backend.version] -= 1
            self.metrics.inflight.labels(backend.version).dec()
        elapsed = time.perf_counter() - start
        self.metrics.latency.labels(backend.version, role).observe(elapsed)
        stable = self.routes.stable
        if role == "primary" and stable is not None and backend.version == stable.version and status < 500:
            self._stable_latencies.append(elapsed)
        self.metrics.requests.labels(backend.version, role, f"{status // 100}xx").inc()
        return status, resp_headers, payload

    async def _shadow_worker(self) -> None:
        while True:
            item = await self.queue.get()
            try:
                path_qs = item.path + (f"?{item.query}" if item.query else "")
                status, _, payload = await self._forward(
                    item.candidate,
                    "POST",
                    path_qs,
                    item.body,
                    item.headers,
                    role="shadow",
                    deadline=self.canary_deadline(),  # a hung candidate fails fast in shadow too
                )
                if item.stable_ok and 200 <= status < 300:
                    self._compare(item, payload)
            except Exception:  # a shadow problem must never stop the worker
                pass
            finally:
                self.queue.task_done()

    def _compare(self, item: _Mirror, candidate_body: bytes) -> None:
        """Compare two prediction responses row by row (launchbay's response shape)."""
        try:
            stable = json.loads(item.stable_body)["predictions"]
            candidate = json.loads(candidate_body)["predictions"]
        except (ValueError, KeyError, TypeError):
            return
        labels = (item.stable_version, item.candidate.version)
        rows = rows_of(item.body)
        if rows is None or len(rows) != len(stable):
            rows = [None] * len(stable)  # not rows launchbay can tell apart: each one counts
        for row, s, c in zip(rows, stable, candidate, strict=False):
            if row is not None and not self._seen.first(key(labels, row)):
                self.metrics.repeated.labels(*labels).inc()
                continue
            self.metrics.compared.labels(*labels).inc()
            shift = row_shift(s, c)
            if disagree(s, c):
                self.metrics.disagreements.labels(*labels).inc()
            if shift is not None:
                self.metrics.score_diff.labels(*labels).observe(shift)
