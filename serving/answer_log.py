"""The model server's answer log: (request id, row digests, answers) of recent /predict requests.

In a cluster a gateway's RequestMirror sends the candidate a copy of each request and throws its
answer away; both copies carry the request id the gateway gave the request (`X-Request-Id`:
Envoy Gateway, Istio and Contour set it, and the mirror copies every header). With
`$LAUNCHBAY_ANSWER_LOG` (how many requests to keep) each server keeps its own answers in a ring,
and `GET /launchbay/answers?since=N` hands them out in order; launchbay's controller pulls stable's
and the candidate's and joins them on the id, so shadow is compared row by row in a cluster as the
local gateway compares it. Only the answers and a digest of each row are kept, and only requests
that carry an id -- unless the model is monitored (`monitor.capture`): then the fields named in
`$LAUNCHBAY_ANSWER_FIELDS` (`*`: all) are kept too, those in `$LAUNCHBAY_ANSWER_HASH` only as a
hash, every other field dropped here, before the row ever leaves the server. The monitor pulls
them, with the answers, to judge live drift and to retrain on.

An ASGI middleware, so both runtimes (the BentoML service and the lean one) keep the same log.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

if TYPE_CHECKING:
    from launchbay.config import LaunchbayConfig

ANSWER_LOG_ENV = "LAUNCHBAY_ANSWER_LOG"
FIELDS_ENV = "LAUNCHBAY_ANSWER_FIELDS"
HASH_ENV = "LAUNCHBAY_ANSWER_HASH"
PATH = "/launchbay/answers"
REQUEST_ID = b"x-request-id"
PAGE = 2000
"""Entries per answer at most (the controller asks again from `next`)."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGI = Callable[[Scope, Receive, Send], Awaitable[None]]


def row_digest(row: Any) -> str:
    """A row's identity without its values: sha256 of its canonical JSON, 16 hex digits."""
    return hashlib.sha256(json.dumps(row, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Kept:
    """Which of a row's fields the log keeps (none by default), and which only as a hash."""

    fields: frozenset[str] | None = frozenset()
    """None: every field."""
    hashed: frozenset[str] = frozenset()

    @property
    def any(self) -> bool:
        return self.fields is None or bool(self.fields)

    def clean(self, row: Any) -> dict[str, Any] | None:
        """The kept part of one row (None: not a row)."""
        if not isinstance(row, dict):
            return None
        out = {k: v for k, v in row.items() if self.fields is None or k in self.fields}
        for k in self.hashed & out.keys():
            out[k] = "sha256:" + hashlib.sha256(json.dumps(out[k]).encode()).hexdigest()[:16]
        return out


class AnswerLog:
    """A ring of the last `size` answered requests that carried an id."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.instance = uuid.uuid4().hex[:12]
        """Who counts `seq` (a restarted server counts from 1 again: a reader starts over)."""
        self._entries: deque[dict[str, Any]] = deque(maxlen=size)
        self._seq = 0
        self._lock = threading.Lock()

    def add(
        self, request_id: str, rows: list[str], predictions: list[Any], values: list[Any] | None = None
    ) -> None:
        """Keep one request's row digests and answers (and the kept part of its rows)."""
        with self._lock:
            self._seq += 1
            entry = {"seq": self._seq, "id": request_id, "at": time.time(), "rows": rows}
            if values is not None:
                entry["values"] = values
            self._entries.append({**entry, "predictions": predictions})

    def since(self, seq: int) -> dict[str, Any]:
        """The entries after `seq` (at most PAGE), where to ask next, and the oldest still kept
        (a reader behind it lost entries to the ring: it says so rather than joining less)."""
        with self._lock:
            newer = [e for e in self._entries if e["seq"] > seq][:PAGE]
            oldest = self._entries[0]["seq"] if self._entries else self._seq + 1
            nxt = newer[-1]["seq"] if newer else max(seq, self._seq)
        return {"entries": newer, "next": nxt, "oldest": oldest, "size": self.size, "instance": self.instance}


class AnswerLogMiddleware:
    """Keeps the answers of `/predict` requests with an id, and serves `GET /launchbay/answers`."""

    def __init__(self, app: ASGI, size: int, kept: Kept | None = None) -> None:
        self.app = app
        self.log = AnswerLog(size)
        self.kept = kept or Kept()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == PATH:
            await self._answers(scope, send)
            return
        request_id = dict(scope.get("headers") or ()).get(REQUEST_ID)
        if scope["path"] != "/predict" or scope["method"] != "POST" or not request_id:
            await self.app(scope, receive, send)
            return
        body: list[bytes] = []
        answer: list[bytes] = []
        status: list[int] = []

        async def receiving() -> Message:
            message = await receive()
            body.append(message.get("body", b""))
            return message

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            elif message["type"] == "http.response.body":
                answer.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receiving, sending)
        if status and status[0] == 200:
            self._keep(request_id.decode("latin-1")[:200], b"".join(body), b"".join(answer))

    def _keep(self, request_id: str, body: bytes, answer: bytes) -> None:
        try:
            request, response = json.loads(body), json.loads(answer)
            predictions = list(response["predictions"])
        except (ValueError, KeyError, TypeError):
            return
        rows = request.get("rows") if isinstance(request, dict) else None
        if rows is None and isinstance(request, dict) and "row" in request:
            rows = [request["row"]]
        digests = [row_digest(r) for r in rows] if isinstance(rows, list) else []
        fits = len(digests) == len(predictions)
        values = None
        if self.kept.any and fits and isinstance(rows, list):
            values = [self.kept.clean(r) for r in rows]
        self.log.add(request_id, digests if fits else [], predictions, values)

    async def _answers(self, scope: Scope, send: Send) -> None:
        if scope["method"] != "GET":
            await _json(send, 405, {"error": "method not allowed", "detail": "GET it"})
            return
        query = parse_qs((scope.get("query_string") or b"").decode("latin-1"))
        try:
            since = int((query.get("since") or ["0"])[0])
        except ValueError:
            await _json(send, 400, {"error": "since: expected a whole number"})
            return
        await _json(send, 200, self.log.since(since))


async def _json(send: Send, status: int, doc: dict[str, Any]) -> None:
    data = json.dumps(doc, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def kept_from_env(environ: MutableMapping[str, str]) -> Kept:
    """The fields kept with each answer ($LAUNCHBAY_ANSWER_FIELDS: `*` or a comma list; unset: none)."""
    given = environ.get(FIELDS_ENV, "").strip()
    hashed = frozenset(f.strip() for f in environ.get(HASH_ENV, "").split(",") if f.strip())
    if given == "*":
        return Kept(None, hashed)
    return Kept(frozenset(f.strip() for f in given.split(",") if f.strip()), hashed)


def env_for(size: int, fields: list[str] | None, hashed: list[str]) -> dict[str, str]:
    """The server environment that keeps `size` answers with `fields` of each row (None: all)."""
    return {
        ANSWER_LOG_ENV: str(size),
        FIELDS_ENV: "*" if fields is None else ",".join(fields),
        HASH_ENV: ",".join(hashed),
    }


def monitored_env(cfg: LaunchbayConfig) -> dict[str, str]:
    """With `monitor:`, each server keeps its answers with the opted-in fields of each row."""
    if cfg.monitor is None:
        return {}
    capture = cfg.monitor.capture
    fields = None if capture.fields == "all" else list(capture.fields)
    return env_for(capture.size, fields, list(capture.hash))


def size_from_env(environ: MutableMapping[str, str]) -> int:
    """How many answers to keep ($LAUNCHBAY_ANSWER_LOG; 0 or unset: no log)."""
    try:
        return max(0, int(environ.get(ANSWER_LOG_ENV, "0") or 0))
    except ValueError:
        return 0
