"""What live traffic is judged against, for every task and any label type."""

from __future__ import annotations

import numpy as np
import pytest

from launchbay.checks.live_reference import ANSWER, Reference, build

TRAIN = {"amount": [1.0, 2.0, 3.0, 4.0] * 50, "colour": ["red", "blue"] * 100, "flag": [True, False] * 100}
KINDS = {"amount": False, "colour": True, "flag": True}


@pytest.mark.parametrize(
    ("classes", "labels"), [([0, 1], [0, 1, 1, 0]), (["no", "yes"], ["no", "yes", "yes", "no"])]
)
def test_a_binary_reference_bins_the_score_and_counts_wrong_classes_at_the_decision_threshold(
    classes: list[object], labels: list[object]
) -> None:
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.5, 0.5]])
    ref = build("binary", TRAIN, KINDS, proba, classes, labels, decision_threshold=0.3)
    assert ref.answer is not None and ref.answer.name == ANSWER and not ref.answer.categorical
    # At 0.3: rows 2, 3, 4 are the positive class; row 4's label is negative: one wrong of four.
    assert ref.offline is not None and (ref.offline.losses, ref.offline.rows) == (1, 4)
    again = Reference.from_json(ref.to_json())
    assert again == ref
    positive = {"prediction": classes[1], "score": 0.8}
    assert again.answer_value(positive) == 0.8
    assert again.loss(positive, labels[1]) == 0 and again.loss(positive, labels[0]) == 1
    assert again.loss(positive, str(labels[1])) == 0  # a label sent as text is the same class


def test_a_multiclass_reference_bins_the_predicted_class() -> None:
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
    ref = build("multiclass", TRAIN, KINDS, proba, ["a", "b", "c"], ["a", "b", "b"])
    assert ref.answer is not None and ref.answer.categorical and set(ref.answer.categories) == {"a", "b", "c"}
    assert ref.offline is not None and ref.offline.losses == 1
    assert ref.answer_value({"prediction": "c", "scores": {"c": 0.8}}) == "c"


def test_a_regression_reference_counts_misses_beyond_the_held_out_90th_percentile() -> None:
    y = np.arange(100, dtype=float)
    output = y + np.linspace(0, 10, 100)  # misses of 0..10
    ref = build("regression", TRAIN, KINDS, output, None, y)
    assert ref.offline is not None and ref.offline.miss_over == pytest.approx(9.0, abs=0.2)
    assert ref.offline.losses == 10 and ref.offline.rows == 100
    assert ref.loss({"prediction": 50.0}, 45.0) == 0 and ref.loss({"prediction": 70.0}, 45.0) == 1
    assert ref.loss({"prediction": 70.0}, "not a number") is None


def test_features_are_binned_by_their_kind() -> None:
    ref = build("regression", TRAIN, KINDS, np.zeros(4), None, np.zeros(4))
    by = {b.name: b for b in ref.features}
    assert not by["amount"].categorical and by["colour"].categories == ("blue", "red")
    assert by["flag"].index([True, False, None]).tolist() == [
        by["flag"].categories.index("True"),
        by["flag"].categories.index("False"),
        3,
    ]


def test_a_document_that_is_not_a_reference_is_refused() -> None:
    with pytest.raises(ValueError, match="not a monitoring reference"):
        Reference.from_json('{"task": "binary"}')
