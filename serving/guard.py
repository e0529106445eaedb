"""Client mistakes stay 4xx, in one documented shape: an ASGI middleware in front of the service.

BentoML answers some malformed requests in ways a client cannot rely on: a JSON body sent as
`multipart/form-data` is a 500 (and would count against a canary), a validation error's `detail`
is a list where its OpenAPI document promises a string, an error raised in the API comes back
wrapped in a list, and the document does not say that a request carries exactly one of `row` and
`rows`. This middleware, installed on the service, makes the promise and the behaviour agree:

* a `POST` whose Content-Type is not JSON is a 415, before BentoML sees it;
* every 4xx body is `{"error": "...", "detail": "..."}` (`detail` optional, a string);
* `/docs.json` states the row/rows rule (`oneOf`), that neither may be null, and the 415.

Only what the server gets wrong remains a 5xx -- which is what the rollout's error rate counts.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

ERROR_SCHEMA = {
    "type": "object",
    "title": "Error",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
}
"""The body of every 4xx answer."""


def is_json(content_type: str) -> bool:
    """application/json (any parameters), or a JSON-based type such as application/problem+json."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def error_body(payload: Any) -> dict[str, str]:
    """Any error body BentoML produced, as `{"error": str, "detail": str}`."""
    if isinstance(payload, list) and payload and isinstance(payload[0], dict):
        payload = payload[0]
    if not isinstance(payload, dict):
        return {"error": str(payload)}
    out = {"error": str(payload.get("error") or payload.get("message") or "bad request")}
    detail = payload.get("detail")
    if isinstance(detail, list):
        parts = []
        for d in detail:
            if isinstance(d, dict):
                where = ".".join(str(p) for p in d.get("loc") or []) or "(body)"
                parts.append(f"{where}: {d.get('msg', d)}")
            else:
                parts.append(str(d))
        out["detail"] = "; ".join(parts)
    elif detail is not None:
        out["detail"] = str(detail)
    return out


def documented(doc: dict[str, Any]) -> dict[str, Any]:
    """The service's OpenAPI document, saying what the service does with requests."""
    schemas = doc.get("components", {}).get("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    for path in doc.get("paths", {}).values():
        op = path.get("post")
        if not isinstance(op, dict):
            continue
        op.setdefault("requestBody", {})["required"] = True  # an empty request is a client mistake
        body = op["requestBody"].get("content", {}).get("application/json", {})
        schema = _resolve(body.get("schema", {}), schemas)
        props = schema.get("properties", {})
        if {"row", "rows"} <= set(props):
            for name in ("row", "rows"):
                props[name] = _not_null(props[name])
            schema["oneOf"] = [{"required": ["row"]}, {"required": ["rows"]}]
            schema["additionalProperties"] = False
            schema["description"] = "Exactly one of `row` (one object) or `rows` (a list)."
        responses = op.setdefault("responses", {})
        error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        responses["400"] = {"description": "Bad Request: the body names what is wrong", **error}
        responses["415"] = {"description": "Unsupported Media Type: send application/json", **error}
    return doc


def _resolve(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        resolved: dict[str, Any] = schemas.get(ref.rsplit("/", 1)[-1], {})
        return resolved
    return schema


def _not_null(prop: dict[str, Any]) -> dict[str, Any]:
    options = [s for s in prop.get("anyOf", []) if s.get("type") != "null"]
    out = dict(options[0]) if len(options) == 1 else {k: v for k, v in prop.items() if k != "anyOf"}
    out.pop("default", None)
    return out


class RequestGuard:
    """The middleware (BentoML: `Service.add_asgi_middleware(RequestGuard, inputs={...})`).

    Args:
        inputs: API path -> the top-level fields its JSON body may have (anything else is a 400:
            BentoML would silently ignore an unknown field, e.g. a misspelt `rows`).
    """

    def __init__(self, app: App, inputs: dict[str, frozenset[str]] | None = None) -> None:
        self.app = app
        self.inputs = inputs or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope.get("method", ""), scope.get("path", "")
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        if method == "POST" and "content-type" in headers and not is_json(headers["content-type"]):
            await _answer(send, 415, {"error": f"Content-Type {headers['content-type']!r} is not supported",
                                      "detail": "send the request body as application/json"})  # fmt: skip
            return
        if method == "POST" and path in self.inputs:
            body, receive = await _read(receive)
            if problem := _unexpected(body, self.inputs[path]):
                await _answer(send, 400, {"error": "invalid request body", "detail": problem})
                return
        if method == "GET" and path == "/docs.json":
            await self.app(scope, receive, _rewriting(send, lambda status: status == 200, _docs))
            return
        await self.app(scope, receive, _rewriting(send, lambda status: 400 <= status < 500, _client_error))


def _client_error(status: int, body: bytes) -> bytes | None:
    try:
        payload = json.loads(body)
    except ValueError:
        payload = body.decode(errors="replace").strip() or "bad request"
    return json.dumps(error_body(payload)).encode()


def _docs(status: int, body: bytes) -> bytes | None:
    try:
        return json.dumps(documented(json.loads(body))).encode()
    except ValueError:
        return None


def _rewriting(
    send: Send, wanted: Callable[[int], bool], rewrite: Callable[[int, bytes], bytes | None]
) -> Send:
    """A `send` that buffers a response whose status is `wanted` and lets `rewrite(status, body)`
    replace its body; every other response (the predictions) passes straight through."""
    start: Message = {}
    chunks: list[bytes] = []

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            if not wanted(int(message["status"])):
                await send(message)
                return
            start.update(message)
            return
        if message["type"] != "http.response.body" or not start:
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = b"".join(chunks)
        replaced = rewrite(int(start["status"]), body)
        if replaced is not None:
            body = replaced
            start["headers"] = [
                (k, v)
                for k, v in start.get("headers", [])
                if k.lower() not in (b"content-length", b"content-type")
            ] + [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send(start)
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return wrapped


async def _read(receive: Receive) -> tuple[bytes, Receive]:
    """The whole request body, and a `receive` that hands it to the app as if unread."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    replayed = False

    async def again() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, again


def _unexpected(body: bytes, allowed: frozenset[str]) -> str | None:
    """What is wrong with a JSON body's top level besides what BentoML checks itself, or None."""
    try:
        doc = json.loads(body) if body.strip() else None
    except ValueError:
        return None  # not JSON at all: BentoML says so in its own words
    if not isinstance(doc, dict):
        return None
    if unknown := sorted(set(doc) - allowed):
        return f"unknown field(s) {', '.join(unknown)}: expected {' or '.join(sorted(allowed))}"
    if nulls := sorted(k for k, v in doc.items() if v is None):
        return f"{', '.join(nulls)} is null: leave out the field you do not send"
    return None


async def _answer(send: Send, status: int, payload: dict[str, str]) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
