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
from collections.abc import Callable, Mapping
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
    return RowSchema(features).rows(body, max_rows)


_MISSING = object()
Check = Callable[[Any], "str | None"]


class RowSchema:
    """The features' rules compiled once into one small check per feature (a request's rows are
    checked in microseconds: on a 1-row request this is a visible share of the server's work)."""

    def __init__(self, features: Mapping[str, Mapping[str, Any]]) -> None:
        self.names = frozenset(features)
        self.checks: list[tuple[str, bool, Check]] = [
            (name, bool(spec.get("nullable")), _checker(spec)) for name, spec in features.items()
        ]
        self.expected = {name: _expected(spec) for name, spec in features.items()}

    def rows(self, body: Any, max_rows: int) -> list[list[Any]]:
        """The rows of a parsed JSON body, each a list of values in feature order.

        Raises:
            BadRequest: the body breaks a rule; its detail names the field.
        """
        if not isinstance(body, dict):
            raise BadRequest("invalid request body", "expected a JSON object with `row` or `rows`")
        if len(body) != 1 or not body.keys() <= {"row", "rows"}:
            _top_level(body)
        if (row := body.get("row")) is not None:
            return [self.row("row", row)]
        rows = body.get("rows")
        if rows is None:
            raise BadRequest("invalid request body", "rows is null: leave out the field you do not send")
        if not isinstance(rows, list):
            raise BadRequest("invalid request body", "rows: Input should be a valid list")
        if not 1 <= len(rows) <= max_rows:
            raise BadRequest(
                "invalid request body", f"rows: List should have at least 1 item and at most {max_rows} items"
            )
        return [self.row(f"rows.{i}", r) for i, r in enumerate(rows)]

    def row(self, where: str, row: Any) -> list[Any]:
        """One row's values in feature order."""
        if not isinstance(row, dict):
            raise BadRequest("invalid request body", f"{where}: Input should be an object")
        if not row.keys() <= self.names:
            unknown = sorted(set(row) - self.names)
            raise BadRequest("invalid request body", f"{where}.{unknown[0]}: Extra inputs are not permitted")
        values: list[Any] = []
        for name, nullable, check in self.checks:
            value = row.get(name, _MISSING)
            if value is _MISSING:
                if not nullable:
                    raise BadRequest("invalid request body", f"{where}.{name}: Field required")
                value = None
            elif value is None:
                if not nullable:
                    raise BadRequest("invalid request body", f"{where}.{name}: {self.expected[name]}")
            elif (problem := check(value)) is not None:
                raise BadRequest("invalid request body", f"{where}.{name}: {problem}")
            values.append(value)
        return values


def _top_level(body: dict[str, Any]) -> None:
    """The body's own mistakes: unknown fields, nulls, both or neither of row and rows."""
    if unknown := sorted(set(body) - {"row", "rows"}):
        raise BadRequest(
            "invalid request body", f"unknown field(s) {', '.join(unknown)}: expected row or rows"
        )
    if nulls := sorted(k for k, v in body.items() if v is None):
        raise BadRequest(
            "invalid request body", f"{', '.join(nulls)} is null: leave out the field you do not send"
        )
    raise BadRequest("invalid request body", "give exactly one of `row` (one object) or `rows` (a list)")


def _checker(spec: Mapping[str, Any]) -> Check:
    """What is wrong with one (non-null) value of a feature, or None -- as a closure."""
    kind = spec.get("type")
    if kind == "category":
        allowed = list(spec.get("values") or [])
        choices = frozenset(allowed)
        says = "Input should be " + ", ".join(repr(v) for v in allowed[:-1]) + f" or {allowed[-1]!r}"
        return lambda v: None if type(v) is str and v in choices else says
    if kind == "bool":
        return lambda v: None if type(v) is bool else "Input should be a valid boolean"
    low, high = spec.get("min"), spec.get("max")
    if kind == "int":  # an integer feature's bounds are whole numbers (pydantic's int(min))
        low, high = (None if low is None else int(low)), (None if high is None else int(high))
        kinds: tuple[type, ...] = (int,)
        wrong = "Input should be a valid integer"
    else:
        kinds = (int, float)
        wrong = "Input should be a valid number"

    def check(v: Any) -> str | None:
        if type(v) not in kinds:  # `type`, not isinstance: a bool is not a number here
            return wrong
        if type(v) is float and not math.isfinite(v):
            return "Input should be a finite number"
        if low is not None and v < low:
            return f"Input should be greater than or equal to {low}"
        if high is not None and v > high:
            return f"Input should be less than or equal to {high}"
        return None

    return check


def _expected(spec: Mapping[str, Any]) -> str:
    return {
        "int": "Input should be a valid integer",
        "bool": "Input should be a valid boolean",
        "category": "Input should be a valid string",
    }.get(str(spec.get("type")), "Input should be a valid number")
