"""A bounded, uniform sample of a server's requests for replay, with fields dropped or hashed.

The local gateway keeps one of users' requests (`launchbay.rollout.local.capture`); in a cluster
each model server keeps one of the requests it answers (`$LAUNCHBAY_CAPTURE`: how many, with
`$LAUNCHBAY_CAPTURE_DROP` and `$LAUNCHBAY_CAPTURE_HASH`, comma-separated fields) and hands it out
at `GET /launchbay/requests`, so the controller can replay them to a candidate before shadow.
Never more than `size` bodies; the busiest second seen is kept as the peak the replay multiplies.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

CAPTURE_ENV = "LAUNCHBAY_CAPTURE"
DROP_ENV = "LAUNCHBAY_CAPTURE_DROP"
HASH_ENV = "LAUNCHBAY_CAPTURE_HASH"
PATH = "/launchbay/requests"


@dataclass(frozen=True)
class Capture:
    """What the gateway keeps (passed to its worker as JSON; size 0: nothing)."""

    size: int = 0
    drop: tuple[str, ...] = ()
    hash: tuple[str, ...] = ()

    def to_json(self) -> str:
        """The form the supervisor hands its worker."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Capture:
        """Parse `to_json`'s form ('' is no capture)."""
        if not text:
            return cls()
        doc = json.loads(text)
        return cls(int(doc.get("size", 0)), tuple(doc.get("drop", ())), tuple(doc.get("hash", ())))


@dataclass
class Sample:
    """The reservoir and the peak rate, in memory."""

    capture: Capture
    seen: int = 0
    peak_rps: int = 0
    bodies: list[str] = field(default_factory=list)
    _second: int = 0
    _this_second: int = 0

    def add(self, body: bytes, now: float | None = None) -> None:
        """Count one user request and maybe keep its (cleaned) body."""
        second = int(time.time() if now is None else now)
        if second != self._second:
            self._second, self._this_second = second, 0
        self._this_second += 1
        self.peak_rps = max(self.peak_rps, self._this_second)
        self.seen += 1
        # Algorithm R: every request seen so far is in the sample with the same chance.
        slot = len(self.bodies) if len(self.bodies) < self.capture.size else random.randrange(self.seen)
        if slot >= self.capture.size:
            return
        cleaned = self._clean(body)
        if cleaned is None:
            return
        if slot == len(self.bodies):
            self.bodies.append(cleaned)
        else:
            self.bodies[slot] = cleaned

    def _clean(self, body: bytes) -> str | None:
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(doc, dict):
            return None
        for key in ("row", "rows"):
            if isinstance(doc.get(key), dict):
                doc[key] = self._fields(doc[key])
            elif isinstance(doc.get(key), list):
                doc[key] = [self._fields(r) if isinstance(r, dict) else r for r in doc[key]]
        return json.dumps(doc, separators=(",", ":"))

    def _fields(self, row: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in row.items() if k not in self.capture.drop}
        for k in self.capture.hash:
            if k in out:
                out[k] = "sha256:" + hashlib.sha256(json.dumps(out[k]).encode()).hexdigest()[:16]
        return out

    def to_dict(self) -> dict[str, Any]:
        """What a reader gets: the bodies, the busiest second, how many were seen."""
        return {"seen": self.seen, "peak_rps": self.peak_rps, "bodies": list(self.bodies), "at": time.time()}


def from_env(environ: Mapping[str, str]) -> Capture:
    """The capture a model server keeps ($LAUNCHBAY_CAPTURE and its field lists; 0: none)."""
    try:
        size = max(0, int(environ.get(CAPTURE_ENV, "0") or 0))
    except ValueError:
        size = 0
    def fields(name: str) -> tuple[str, ...]:
        return tuple(f.strip() for f in environ.get(name, "").split(",") if f.strip())

    return Capture(size, fields(DROP_ENV), fields(HASH_ENV))


@dataclass(frozen=True)
class Captured:
    """A sample as the controller reads it back (from the gateway's file, or stable's pods)."""

    bodies: list[str]
    peak_rps: int
    seen: int



class RequestSampleMiddleware:
    """Keeps a sample of `/predict` request bodies and serves it at `GET /launchbay/requests`."""

    def __init__(self, app: Any, capture: Capture) -> None:
        self.app = app
        self.sample = Sample(capture)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == PATH:
            status = 200 if scope["method"] == "GET" else 405
            wrong = {"error": "method not allowed", "detail": "GET it"}
            doc = self.sample.to_dict() if status == 200 else wrong
            data = json.dumps(doc, separators=(",", ":")).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": data})
            return
        if scope["type"] != "http" or scope["path"] != "/predict" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body: list[bytes] = []

        async def receiving() -> Any:
            message = await receive()
            body.append(message.get("body", b""))
            return message

        await self.app(scope, receiving, send)
        self.sample.add(b"".join(body))
