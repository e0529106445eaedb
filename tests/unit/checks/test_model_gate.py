"""The model gate's decision, as a pure function of scores and thresholds."""

import numpy as np
import pytest

from launchbay.checks.model_gate import Champion, Scores, judge, score
from launchbay.checks.verdict import Verdict
from launchbay.config import GatesSection

GATES = GatesSection(min_auc=0.85, min_precision=0.4, min_recall=0.4, max_regression_vs_champion=0.01)


def scores(auc: float | None = 0.92, precision: float = 0.6, recall: float = 0.5) -> Scores:
    return Scores(
        roc_auc=auc, precision=precision, recall=recall, f1=0.5, pr_auc=0.5, rows=1000, positives=40
    )


def verdicts(report) -> dict[str, Verdict]:  # type: ignore[no-untyped-def]
    return {c.name.split(" at ")[0]: c.verdict for c in report.checks}


def test_first_model_passes_on_floors_alone() -> None:
    report = judge(scores(), None, GATES)
    assert report.verdict is Verdict.PASS
    assert any(c.observed == "no champion yet" for c in report.checks)


@pytest.mark.parametrize(
    ("field", "value", "check"),
    [
        ("auc", 0.80, "ROC AUC"),
        ("precision", 0.30, "precision"),
        ("recall", 0.10, "recall"),
    ],
)
def test_each_floor_fails_on_its_own(field: str, value: float, check: str) -> None:
    report = judge(scores(**{field: value}), None, GATES)
    assert report.verdict is Verdict.FAIL
    assert verdicts(report)[check] is Verdict.FAIL
    assert [c.name.split(" at ")[0] for c in report.problems] == [check]


def test_regression_beyond_tolerance_vs_champion_fails() -> None:
    report = judge(scores(auc=0.90), Champion("3", scores(auc=0.92)), GATES)
    assert report.verdict is Verdict.FAIL
    bad = report.problems[0]
    assert bad.name == "ROC AUC vs champion v3" and "-0.0200" in bad.detail


def test_regression_within_tolerance_passes() -> None:
    report = judge(scores(auc=0.915), Champion("3", scores(auc=0.92)), GATES)
    assert report.verdict is Verdict.PASS
    assert report.summary["champion"] == "version 3"


def test_champion_that_cannot_be_scored_is_an_error_not_a_pass() -> None:
    report = judge(scores(), Champion("3", None, "KeyError: 'amount'"), GATES)
    assert report.verdict is Verdict.ERROR
    assert "KeyError" in report.problems[0].detail


def test_single_class_heldout_is_inconclusive() -> None:
    assert judge(scores(auc=None), None, GATES).verdict is Verdict.INCONCLUSIVE


def test_score_measures_a_model_at_the_threshold() -> None:
    class Fixed:
        def predict_proba(self, x):  # type: ignore[no-untyped-def]
            p = np.asarray(x, dtype=float)
            return np.column_stack([1 - p, p])

    s = score(Fixed(), [0.1, 0.2, 0.8, 0.9, 0.6], [0, 0, 1, 1, 0], threshold=0.5)
    assert s.roc_auc == pytest.approx(1.0)
    assert s.precision == pytest.approx(2 / 3) and s.recall == pytest.approx(1.0)
    assert (s.rows, s.positives) == (5, 2)
