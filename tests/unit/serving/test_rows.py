"""The lean runtimes' row check decides every request as the BentoML service's pydantic model does."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from launchbay.config.model import FeatureSpec
from launchbay.serving.rows import BadRequest, request_rows
from launchbay.serving.schema import row_model
from launchbay.serving.spec import ServingSpec

FEATURES = {
    "amount": FeatureSpec(type="float", min=0, max=1000),
    "hour": FeatureSpec(type="int", min=0, max=23),
    "shop": FeatureSpec(type="category", values=["fuel", "grocery", "travel"]),
    "present": FeatureSpec(type="bool"),
    "score": FeatureSpec(type="float", nullable=True),
    "kind": FeatureSpec(type="category", values=["a", "b"], nullable=True),
    "age": FeatureSpec(type="int", min=0.5, max=99.9),
}
SPEC = ServingSpec(model="m", version="1", features=FEATURES, decision_threshold=0.5)
PLAIN = {k: v.model_dump() for k, v in FEATURES.items()}
Row = row_model(SPEC)
GOOD = {"amount": 10.5, "hour": 3, "shop": "fuel", "present": True, "score": None, "kind": "a", "age": 40}

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**18), 10**18),
    st.integers(-2, 30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-5, 1005),
    st.sampled_from(["fuel", "grocery", "crypto", "a", "b", "", "3", "10.5"]),
)


def pydantic_accepts(row: Any) -> bool:
    try:
        Row.model_validate(row)
    except ValidationError:
        return False
    return True


def lean_accepts(row: Any) -> bool:
    try:
        request_rows({"row": row}, PLAIN, 64)
    except BadRequest:
        return False
    return True


@settings(max_examples=600, deadline=None)
@given(row=st.fixed_dictionaries({}, optional={k: VALUES for k in [*FEATURES, "extra"]}))
def test_any_row_is_accepted_or_refused_by_both(row: dict[str, Any]) -> None:
    assert lean_accepts(row) is pydantic_accepts(row), row


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(FEATURES)), value=VALUES)
def test_any_single_bad_value_is_refused_by_both(name: str, value: Any) -> None:
    row = {**GOOD, name: value}
    assert lean_accepts(row) is pydantic_accepts(row), row


def test_the_rows_come_back_in_feature_order_with_missing_nullables_as_none() -> None:
    row = {k: v for k, v in GOOD.items() if k != "kind"}
    (values,) = request_rows({"row": row}, PLAIN, 64)
    assert values == [10.5, 3, "fuel", True, None, None, 40]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"row": {**GOOD, "amount": "950"}}, "row.amount: Input should be a valid number"),
        ({"rows": [GOOD, {**GOOD, "hour": 24}]}, "rows.1.hour: Input should be less than or equal to 23"),
        ({"row": {**GOOD, "shop": "crypto"}}, "row.shop: Input should be 'fuel', 'grocery' or 'travel'"),
        ({"row": {k: v for k, v in GOOD.items() if k != "hour"}}, "row.hour: Field required"),
        ({"row": {**GOOD, "x": 1}}, "row.x: Extra inputs are not permitted"),
        ({"rows": [GOOD] * 65}, "rows: List should have at least 1 item and at most 64 items"),
        ({"rows": []}, "rows: List should have at least 1 item"),
        ({"row": GOOD, "rows": [GOOD]}, "give exactly one of `row`"),
        ({}, "give exactly one of `row`"),
        ({"row": GOOD, "rowz": 1}, "unknown field(s) rowz"),
        ({"rows": None}, "rows is null"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_a_refusal_names_the_field(body: Any, says: str) -> None:
    with pytest.raises(BadRequest) as refused:
        request_rows(body, PLAIN, 64)
    assert says in refused.value.detail
