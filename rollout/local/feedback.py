"""Labels that come back after the answer: `POST /feedback` at the gateway, `launchbay feedback FILE`.

Every answer through the gateway carries `X-Request-Id` (the client's own id when it sent a usable
one, else one the gateway made). Whoever learns the truth later -- a chargeback, a support ticket
-- sends `{"id": ..., "label": ...}` (or `{"labels": [...]}`) to `POST /feedback` with the model's
feedback token (`Authorization: Bearer`, the file `feedback.token` beside the gateway's state,
readable by its owner only), or hands a file to `launchbay feedback`. Labels are appended to
`feedback.jsonl`; the latest label of an id wins. A malformed item is the sender's mistake (400,
naming it) and nothing of that request is kept.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import secrets
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

PATH = "/feedback"
TOKEN_FILE = "feedback.token"
FEEDBACK_FILE = "feedback.jsonl"
MAX_ITEMS = 10_000
"""Labels one request may carry."""
_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,200}$")


def request_id(headers: dict[str, str]) -> str:
    """Take the client's request id out of `headers` (any spelling), or make one; ids that are
    not short printable tokens are replaced rather than trusted."""
    given = None
    for k in [k for k in headers if k.lower() == "x-request-id"]:
        given = headers.pop(k)
    return given if given and _ID.match(given) else uuid.uuid4().hex


def token(directory: Path) -> str:
    """The model's feedback token (made on first use, readable by its owner only)."""
    path = directory / TOKEN_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        directory.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # made by someone else meanwhile: theirs stands
            return path.read_text().strip()
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")
        return value


def parse(doc: Any) -> list[dict[str, Any]]:
    """The (id, label) items of a feedback document.

    Raises:
        ValueError: naming the first thing that is wrong.
    """
    items = doc.get("labels") if isinstance(doc, dict) and "labels" in doc else doc
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list) or not items:
        raise ValueError('expected {"id": ..., "label": ...} or {"labels": [...]}')
    if len(items) > MAX_ITEMS:
        raise ValueError(f"at most {MAX_ITEMS} labels per request, got {len(items)}")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "id" not in item or "label" not in item:
            raise ValueError(f"item {i}: expected an object with id and label")
        rid, label = item["id"], item["label"]
        if not isinstance(rid, str) or not _ID.match(rid):
            raise ValueError(f"item {i}: id must be the X-Request-Id of an answer")
        if label is None or isinstance(label, (dict, list)):
            raise ValueError(f"item {i}: label must be a value (a class or a number)")
        out.append({"id": rid, "label": label})
    return out


def append(directory: Path, items: Iterable[Mapping[str, Any]], by: str) -> int:
    """Keep labels (one write, appended: concurrent senders never interleave within a line)."""
    now = round(time.time(), 3)
    lines = "".join(
        json.dumps({"id": i["id"], "label": i["label"], "at": now, "by": by}) + "\n" for i in items
    )
    if not lines:
        return 0
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / FEEDBACK_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, lines.encode())
    finally:
        os.close(fd)
    return lines.count("\n")


def labels(directory: Path) -> dict[str, Any]:
    """Every id's latest label (a torn last line, from a crash mid-write, is skipped)."""
    try:
        return dict(parse_lines((directory / FEEDBACK_FILE).read_text()))
    except FileNotFoundError:
        return {}


def parse_lines(text: str) -> list[tuple[str, Any]]:
    """The (id, label) of each line of the feedback file, in order; a line that is not one is skipped."""
    out = []
    for line in text.splitlines():
        try:
            doc = json.loads(line)
            out.append((str(doc["id"]), doc["label"]))
        except (ValueError, KeyError, TypeError):
            continue
    return out


def read_file(path: Path, id_column: str, label_column: str) -> list[dict[str, Any]]:
    """The (id, label) items of a CSV, Parquet, JSON or JSON-lines file.

    Raises:
        ValueError: the file cannot be read, lacks a column, or an item is malformed (named).
    """
    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonl", ".ndjson"):
            docs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        elif suffix == ".json":
            loaded = json.loads(path.read_text())
            docs = loaded if isinstance(loaded, list) else [loaded]
        else:
            import pandas as pd

            frame = (
                pd.read_parquet(path)
                if suffix in (".parquet", ".pq")
                else pd.read_csv(path, dtype={id_column: str})
            )
            docs = frame.to_dict(orient="records")
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    items = []
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict):
            raise ValueError(f"{path}: row {i + 1} is not a record")
        missing = [c for c in (id_column, label_column) if c not in doc]
        if missing:
            raise ValueError(f"{path}: row {i + 1} lacks {' and '.join(map(repr, missing))}")
        label = doc[label_column]
        items.append({"id": str(doc[id_column]), "label": label.item() if hasattr(label, "item") else label})
    return parse(items) if items else []


class Receiver:
    """The gateway's `POST /feedback`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.token = token(directory)  # there from the start, for whoever sends labels to read

    async def post(self, request: web.Request) -> web.Response:
        given = request.headers.get("Authorization", "")
        if not given.startswith("Bearer "):
            return web.json_response(
                {"error": "feedback needs the model's token: Authorization: Bearer"}, status=401
            )
        if not hmac.compare_digest(given.removeprefix("Bearer ").strip(), self.token):
            return web.json_response({"error": "wrong feedback token"}, status=403)
        try:
            items = parse(await request.json())
        except ValueError as exc:  # includes a body that is not JSON
            return web.json_response({"error": f"feedback: {exc}"}, status=400)
        return web.json_response({"accepted": append(self.directory, items, "api")})
