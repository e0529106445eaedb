"""The offline difference between a challenger and its champion: measured as the gateway measures
live answers, on distinct rows, and carried through the registry as JSON."""

from __future__ import annotations

import numpy as np
import pandas as pd

from launchbay.checks.difference import OfflineDifference, difference, distinct


def test_binary_disagreement_is_counted_at_the_decision_threshold_with_the_score_shift() -> None:
    challenger = np.array([[0.9, 0.1], [0.4, 0.6], [0.45, 0.55], [0.2, 0.8]])
    champion = np.array([[0.8, 0.2], [0.6, 0.4], [0.45, 0.55], [0.1, 0.9]])
    d = difference(challenger, champion, against="1", task="binary", challenger_classes=[0, 1],
                   champion_classes=[0, 1], threshold=0.5)  # fmt: skip
    assert (d.rows, d.disagreeing) == (4, 1) and d.disagreement == 0.25
    assert abs((d.score_shift or 0) - np.mean([0.1, 0.2, 0.0, 0.1])) < 1e-9
    at_085 = difference(challenger, champion, against="1", task="binary", threshold=0.85)
    assert at_085.disagreeing == 1  # 0.6 vs 0.4 now agree (negative); 0.8 vs 0.9 do not


def test_multiclass_classes_are_matched_by_label_whatever_their_order() -> None:
    challenger = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])  # classes 0, 1, 2
    champion = np.array([[0.1, 0.2, 0.7], [0.8, 0.1, 0.1]])  # classes 2, 1, 0: the same answers
    d = difference(challenger, champion, against="4", task="multiclass",
                   challenger_classes=[0, 1, 2], champion_classes=[2, 1, 0])  # fmt: skip
    assert d.disagreeing == 0 and d.score_shift == 0.0


def test_regression_is_the_mean_relative_difference() -> None:
    d = difference(np.array([10.0, 0.0, -2.0]), np.array([8.0, 0.0, 2.0]), against="1", task="regression")
    assert d.disagreeing is None and abs((d.relative_difference or 0) - (0.2 + 0.0 + 1.0) / 3) < 1e-9


def test_repeated_rows_count_once() -> None:
    rows = pd.DataFrame({"a": [1, 2, 1, 3, 2], "b": ["x", "y", "x", "z", "q"]})
    assert distinct(rows).tolist() == [0, 1, 3, 4]


def test_the_tag_round_trips_and_anything_else_is_none() -> None:
    d = OfflineDifference("3", 500, disagreeing=15, score_shift=0.021)
    assert OfflineDifference.from_json(d.to_json()) == d
    assert "15 of 500 distinct held-out rows disagree (3.0%)" in d.describe()
    for junk in (None, "", "{", '{"rows": 1}', "[1, 2]", '{"against": "1", "rows": "many"}'):
        assert OfflineDifference.from_json(junk) is None
