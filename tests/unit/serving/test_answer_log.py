"""The model server's answer log: only answered requests that carry an id, bounded, read in order."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from launchbay.serving.answer_log import AnswerLogMiddleware, row_digest, size_from_env


async def _model(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A stand-in model: answers each row with its `x`, and 500 for x < 0."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    rows = json.loads(body).get("rows") or [json.loads(body)["row"]]
    status = 500 if any(r["x"] < 0 for r in rows) else 200
    data = json.dumps({"predictions": [{"prediction": r["x"]} for r in rows]}).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m")


def test_answers_with_an_id_are_kept_in_order_and_read_from_a_cursor() -> None:
    app = AnswerLogMiddleware(_model, size=3)

    async def go() -> None:
        async with _client(app) as c:
            await c.post("/predict", json={"row": {"x": 1}}, headers={"X-Request-Id": "a"})
            await c.post("/predict", json={"row": {"x": 2}})  # no id: nothing to join it with
            await c.post("/predict", json={"row": {"x": -1}}, headers={"X-Request-Id": "bad"})  # a 500
            await c.post("/predict", json={"rows": [{"x": 3}, {"x": 4}]}, headers={"X-Request-Id": "b"})
            first = (await c.get("/launchbay/answers")).json()
            assert [e["id"] for e in first["entries"]] == ["a", "b"]
            assert first["entries"][1]["rows"] == [row_digest({"x": 3}), row_digest({"x": 4})]
            assert first["entries"][1]["predictions"] == [{"prediction": 3}, {"prediction": 4}]
            assert "x" not in json.dumps(first["entries"][1]["rows"])  # digests, never the values
            for i in range(3):
                await c.post("/predict", json={"row": {"x": 10 + i}}, headers={"X-Request-Id": f"c{i}"})
            later = (await c.get("/launchbay/answers", params={"since": first["next"]})).json()
            assert [e["id"] for e in later["entries"]] == ["c0", "c1", "c2"]
            # The ring holds 3: a reader still at the start learns it lost the older ones.
            assert later["oldest"] > first["entries"][0]["seq"] + 1
            assert (await c.post("/launchbay/answers")).status_code == 405
            assert (await c.get("/launchbay/answers", params={"since": "x"})).status_code == 400

    asyncio.run(go())


def test_the_size_comes_from_the_environment_and_a_bad_one_turns_it_off() -> None:
    assert size_from_env({"LAUNCHBAY_ANSWER_LOG": "500"}) == 500
    assert size_from_env({}) == 0 and size_from_env({"LAUNCHBAY_ANSWER_LOG": "lots"}) == 0


def test_a_monitored_server_keeps_only_the_opted_in_fields_and_hashes_the_named_ones() -> None:
    from launchbay.serving.answer_log import kept_from_env

    kept = kept_from_env({"LAUNCHBAY_ANSWER_FIELDS": "x,email", "LAUNCHBAY_ANSWER_HASH": "email"})
    app = AnswerLogMiddleware(_model, size=10, kept=kept)

    async def go() -> dict[str, Any]:
        async with _client(app) as c:
            row = {"x": 3, "email": "a@b.c", "secret": "s3"}
            await c.post("/predict", json={"row": row}, headers={"X-Request-Id": "r1"})
            doc: dict[str, Any] = (await c.get("/launchbay/answers?since=0")).json()
            return doc

    doc = asyncio.run(go())
    (entry,) = doc["entries"]
    (values,) = entry["values"]
    assert values["x"] == 3 and "secret" not in values  # never asked for: dropped at the server
    assert values["email"].startswith("sha256:") and "a@b.c" not in json.dumps(doc)
    assert doc["instance"]  # a reader can tell a restarted server (its count starts again)


def test_without_opted_in_fields_no_row_value_is_kept() -> None:
    app = AnswerLogMiddleware(_model, size=10)

    async def go() -> dict[str, Any]:
        async with _client(app) as c:
            await c.post("/predict", json={"row": {"x": 5}}, headers={"X-Request-Id": "r1"})
            doc: dict[str, Any] = (await c.get("/launchbay/answers?since=0")).json()
            return doc

    assert "values" not in asyncio.run(go())["entries"][0]
