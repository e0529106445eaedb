"""The request schema generated from the features: strict types, ranges, categories, no NaN/inf."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from launchbay.config.model import FeatureSpec
from launchbay.serving.schema import row_model
from launchbay.serving.spec import ServingSpec

SPEC = ServingSpec(
    model="m",
    version="1",
    decision_threshold=0.5,
    features={
        "amount": FeatureSpec(type="float", min=0, max=1000),
        "hour": FeatureSpec(type="int", min=0, max=23),
        "kind": FeatureSpec(type="category", values=["a", "b"]),
        "flag": FeatureSpec(type="bool"),
        "note_score": FeatureSpec(type="float", nullable=True),
    },
)
Row = row_model(SPEC)
GOOD = {"amount": 12.5, "hour": 3, "kind": "a", "flag": True, "note_score": None}


def errors(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as exc:
        Row.model_validate(data)
    return [(".".join(map(str, e["loc"])), e["type"]) for e in exc.value.errors()]


def test_a_good_row_is_accepted_and_ints_are_fine_for_floats() -> None:
    assert Row.model_validate(GOOD).amount == 12.5
    assert Row.model_validate({**GOOD, "amount": 12}).amount == 12
    assert Row.model_validate({k: v for k, v in GOOD.items() if k != "note_score"}).note_score is None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"amount": "12.5"}, ("amount", "float_type")),  # strings are not numbers
        ({"amount": -1}, ("amount", "greater_than_equal")),
        ({"amount": float("nan")}, ("amount", "finite_number")),
        ({"amount": float("inf")}, ("amount", "finite_number")),
        ({"hour": 3.5}, ("hour", "int_type")),
        ({"hour": 24}, ("hour", "less_than_equal")),
        ({"kind": "c"}, ("kind", "literal_error")),
        ({"flag": 1}, ("flag", "bool_type")),  # 1 is not a boolean
        ({"surprise": 1}, ("surprise", "extra_forbidden")),
        ({"amount": None}, ("amount", "float_type")),  # only nullable features take null
    ],
)
def test_each_violation_is_named(change: dict[str, Any], expected: tuple[str, str]) -> None:
    assert expected in errors({**GOOD, **change})


def test_missing_field_is_named() -> None:
    assert ("hour", "missing") in errors({k: v for k, v in GOOD.items() if k != "hour"})


@settings(max_examples=200, deadline=None)
@given(
    amount=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.text(max_size=3)),
    hour=st.one_of(st.integers(-5, 30), st.floats(allow_nan=False)),
)
def test_accepts_exactly_the_values_the_spec_allows(amount: Any, hour: Any) -> None:
    ok_amount = (
        isinstance(amount, (int, float))
        and not isinstance(amount, bool)
        and math.isfinite(amount)
        and 0 <= amount <= 1000
    )
    ok_hour = isinstance(hour, int) and 0 <= hour <= 23
    try:
        Row.model_validate({**GOOD, "amount": amount, "hour": hour})
        accepted = True
    except ValidationError:
        accepted = False
    assert accepted == (ok_amount and ok_hour)
