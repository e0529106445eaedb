"""The model gate's decision, as a pure function of scores and thresholds."""

import numpy as np
import pytest

from launchbay.checks.model_gate import Champion, Scores, judge, score
from launchbay.checks.verdict import Verdict
from launchbay.config.model import GatesSection

GATES = GatesSection(min_auc=0.85, min_precision=0.4, min_recall=0.4, max_regression_vs_champion=0.01)


def scores(auc: float | None = 0.92, precision: float = 0.6, recall: float = 0.5) -> Scores:
    values = {"roc_auc": auc, "precision": precision, "recall": recall, "f1": 0.5, "pr_auc": 0.5}
    return Scores("binary", values, rows=1000, class_counts={"0": 960, "1": 40})


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


def test_score_measures_probabilities_at_the_threshold() -> None:
    p = np.asarray([0.1, 0.2, 0.8, 0.9, 0.6])
    s = score(np.column_stack([1 - p, p]), [0, 0, 1, 1, 0], task="binary", classes=[0, 1], threshold=0.5)
    assert s.get("roc_auc") == pytest.approx(1.0)
    assert s.get("precision") == pytest.approx(2 / 3) and s.get("recall") == pytest.approx(1.0)
    assert (s.rows, s.class_counts) == (5, {"0": 3, "1": 2})


def test_binary_labels_need_not_be_zero_and_one() -> None:
    p = np.asarray([0.1, 0.9, 0.8])
    s = score(np.column_stack([1 - p, p]), ["ham", "spam", "spam"], task="binary", classes=["ham", "spam"])
    assert s.get("recall") == pytest.approx(1.0) and s.class_counts == {"ham": 1, "spam": 2}


def test_multiclass_is_scored_by_macro_averages() -> None:
    proba = np.asarray([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1]])
    s = score(proba, ["a", "b", "c", "b"], task="multiclass", classes=["a", "b", "c"])
    assert s.get("accuracy") == pytest.approx(0.75)
    assert s.get("recall") == pytest.approx((1 + 0.5 + 1) / 3)
    assert s.get("roc_auc") is not None


def test_multiclass_auc_is_undefined_when_a_class_is_missing_from_the_heldout_rows() -> None:
    proba = np.asarray([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1]])
    s = score(proba, ["a", "b"], task="multiclass", classes=["a", "b", "c"])
    assert s.get("roc_auc") is None
    report = judge(s, None, GatesSection(min_auc=0.5))
    assert report.verdict is Verdict.INCONCLUSIVE


def test_regression_is_scored_by_errors_and_r2() -> None:
    s = score([1.0, 2.0, 4.0], [1.0, 2.0, 3.0], task="regression")
    assert s.get("rmse") == pytest.approx((1 / 3) ** 0.5)
    assert s.get("mae") == pytest.approx(1 / 3)
    assert s.get("r2") == pytest.approx(0.5)


def regression(rmse: float, r2: float = 0.9) -> Scores:
    return Scores("regression", {"rmse": rmse, "mae": rmse * 0.8, "r2": r2}, rows=500)


def test_regression_gate_applies_its_ceilings_and_floor() -> None:
    gates = GatesSection(max_rmse=10.0, min_r2=0.8)
    assert judge(regression(9.0), None, gates).verdict is Verdict.PASS
    failed = judge(regression(11.0, r2=0.7), None, gates)
    assert [c.name for c in failed.problems] == ["RMSE", "R²"]
    assert "above the ceiling" in failed.problems[0].detail


def test_regression_vs_champion_allows_a_relative_loss() -> None:
    gates = GatesSection(max_regression_vs_champion=0.05)
    champion = Champion("2", regression(10.0))
    assert judge(regression(10.4), champion, gates, ("rmse",)).verdict is Verdict.PASS
    worse = judge(regression(10.6), champion, gates, ("rmse",))
    assert worse.verdict is Verdict.FAIL
    assert worse.problems[0].name == "RMSE vs champion v2"
    assert worse.problems[0].expected == "<= 10.5000 (champion 10.0000 + 5%)"


def test_every_configured_metric_is_compared_with_the_champion() -> None:
    champion = Champion("3", scores(auc=0.92, recall=0.6))
    report = judge(scores(auc=0.92, recall=0.5), champion, GATES, ("roc_auc", "recall"))
    assert [c.name for c in report.problems] == ["recall vs champion v3"]


@pytest.mark.parametrize(
    ("labels", "classes"),
    [
        ([0, 1, 2, 1], [0, 1, 2]),  # load_wine: integer labels
        (np.array([0, 1, 2, 1], dtype=np.int64), np.array([0, 1, 2])),  # as numpy gives them
        ([1.0, 2.0, 3.0, 2.0], [1.0, 2.0, 3.0]),
        (["a", "b", "c", "b"], ["a", "b", "c"]),
        ([0, 1, 2, 1], ["0", "1", "2"]),  # classes read back from JSON metadata as strings
    ],
)
def test_multiclass_labels_of_any_type_are_scored(labels: object, classes: object) -> None:
    proba = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.2, 0.6, 0.2]])
    s = score(proba, labels, task="multiclass", classes=list(classes))  # type: ignore[call-overload]
    assert s.get("accuracy") == 1.0 and s.get("roc_auc") == 1.0 and sum(s.class_counts.values()) == 4


@pytest.mark.parametrize(
    ("labels", "classes"),
    [
        ([False, True, True, False], [False, True]),
        ([0, 1, 1, 0], ["0", "1"]),
        (["no", "yes", "yes", "no"], ["no", "yes"]),
    ],
)
def test_binary_labels_of_any_type_are_scored(labels: object, classes: object) -> None:
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    s = score(proba, labels, task="binary", classes=list(classes))  # type: ignore[call-overload]
    assert s.get("roc_auc") == 1.0 and s.get("recall") == 1.0 and s.class_counts == {
        str(classes[0]): 2, str(classes[1]): 2  # type: ignore[index]
    }
