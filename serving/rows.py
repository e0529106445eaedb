"""A request's rows checked against the model's features, without pydantic: the lean runtimes' check.

The BentoML service validates with the pydantic model `schema.row_model` builds; the lean HTTP
runtime, the function handlers and the edge bundle validate here, by the same rules, from the
features in the signed `serving.json` (a plain JSON document -- no config classes on a cold
start): strict types (`"12"` is not a number, `1` is not a boolean, `1.0` is not an integer),
ranges, allowed categories, nulls only where a feature is nullable (a missing nullable feature
is null), no NaN or infinity, no unknown fields, one of `row` or `rows` (1 to `max_rows`).
`tests/unit/serving/test_rows.py` holds both to the same decisions on generated rows.

A refusal is a `BadRequest` whose detail names the field (`rows.3.amount: ...`), as pydantic's do.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


class BadRequest(Exception):
    """A client mistake: answered 400 with `{"error": ..., "detail": ...}`."""

    def __init__(self, error: str, detail: str = "") -> None:
        super().__init__(f"{error}: {detail}" if detail else error)
        self.error = error
        self.detail = detail

    def body(self) -> dict[str, str]:
        """The documented 4xx body."""
        return {"error": self.error, "detail": self.detail} if self.detail else {"error": self.error}


def request_rows(body: Any, features: Mapping[str, Mapping[str, Any]], max_rows: int) -> list[list[Any]]:
    """The rows of a parsed JSON body, each a list of values in `features` order.

    Raises:
        BadRequest: the body breaks a rule; its detail names the field.
    """
    if not isinstance(body, dict):
        raise BadRequest("invalid request body", "expected a JSON object with `row` or `rows`")
    if unknown := sorted(set(body) - {"row", "rows"}):
        raise BadRequest(
            "invalid request body", f"unknown field(s) {', '.join(unknown)}: expected row or rows"
        )
    if nulls := sorted(k for k, v in body.items() if v is None):
        raise BadRequest(
            "invalid request body", f"{', '.join(nulls)} is null: leave out the field you do not send"
        )
    if ("row" in body) == ("rows" in body):
        raise BadRequest("invalid request body", "give exactly one of `row` (one object) or `rows` (a list)")
    if "row" in body:
        return [_row("row", body["row"], features)]
    rows = body["rows"]
    if not isinstance(rows, list):
        raise BadRequest("invalid request body", "rows: Input should be a valid list")
    if not 1 <= len(rows) <= max_rows:
        raise BadRequest(
            "invalid request body", f"rows: List should have at least 1 item and at most {max_rows} items"
        )
    return [_row(f"rows.{i}", r, features) for i, r in enumerate(rows)]


def _row(where: str, row: Any, features: Mapping[str, Mapping[str, Any]]) -> list[Any]:
    if not isinstance(row, dict):
        raise BadRequest("invalid request body", f"{where}: Input should be an object")
    if unknown := sorted(set(row) - set(features)):
        raise BadRequest("invalid request body", f"{where}.{unknown[0]}: Extra inputs are not permitted")
    values: list[Any] = []
    for name, spec in features.items():
        if name not in row:
            if spec.get("nullable"):
                values.append(None)
                continue
            raise BadRequest("invalid request body", f"{where}.{name}: Field required")
        problem = _problem(row[name], spec)
        if problem:
            raise BadRequest("invalid request body", f"{where}.{name}: {problem}")
        values.append(row[name])
    return values


def _problem(value: Any, spec: Mapping[str, Any]) -> str | None:
    """What is wrong with one value of a feature, or None."""
    if value is None:
        return None if spec.get("nullable") else _expected(spec)
    kind = spec.get("type")
    if kind == "category":
        allowed = list(spec.get("values") or [])
        if not isinstance(value, str) or value not in allowed:
            return "Input should be " + ", ".join(repr(v) for v in allowed[:-1]) + f" or {allowed[-1]!r}"
        return None
    if kind == "bool":
        return None if isinstance(value, bool) else "Input should be a valid boolean"
    if isinstance(value, bool):
        return _expected(spec)
    if kind == "int":
        if not isinstance(value, int):
            return "Input should be a valid integer"
    elif not isinstance(value, (int, float)):
        return "Input should be a valid number"
    elif isinstance(value, float) and not math.isfinite(value):
        return "Input should be a finite number"
    low, high = spec.get("min"), spec.get("max")
    if kind == "int":  # an integer feature's bounds are whole numbers (pydantic's int(min))
        low, high = (None if low is None else int(low)), (None if high is None else int(high))
    if low is not None and value < low:
        return f"Input should be greater than or equal to {low}"
    if high is not None and value > high:
        return f"Input should be less than or equal to {high}"
    return None


def _expected(spec: Mapping[str, Any]) -> str:
    return {
        "int": "Input should be a valid integer",
        "bool": "Input should be a valid boolean",
        "category": "Input should be a valid string",
    }.get(str(spec.get("type")), "Input should be a valid number")
