import pytest

from launchbay.pipelines.expressions import ExpressionError, depends_names, evaluate_depends, evaluate_when


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("heads == heads", True),
        ("heads == tails", False),
        ("'a b' != 'a c'", True),
        ("5 == 5.0", True),
        ("3 < 10", True),  # numbers, not strings: "3" > "10" as text
        ("10 <= 3", False),
        ("true && !false", True),
        ("(1 > 2) || (2 > 1)", True),
        ("!(a == a) || b == c", False),
    ],
)
def test_when_conditions(expr: str, expected: bool) -> None:
    assert evaluate_when(expr) is expected


@pytest.mark.parametrize(
    "expr", ["", "a ==", "a = b", "1 < x", "heads", "{{tasks.a.outputs.result}} == 1", "a =~ b"]
)
def test_malformed_or_unsupported_conditions_raise(expr: str) -> None:
    with pytest.raises(ExpressionError):
        evaluate_when(expr)


def test_depends_names_and_evaluation() -> None:
    assert depends_names("a && (b.Succeeded || c.Skipped)") == {"a", "b", "c"}
    phases = {"a": "Succeeded", "b": "Failed", "c": "Skipped"}
    assert evaluate_depends("a && (b.Succeeded || c.Skipped)", phases) is True
    assert evaluate_depends("a && b", phases) is False
    assert evaluate_depends("c", phases) is True  # a bare name accepts Skipped, as in Argo


def test_failure_handlers_in_depends_are_refused() -> None:
    with pytest.raises(ExpressionError, match="stops at the first failed task"):
        depends_names("a.Failed")
    with pytest.raises(ExpressionError, match="unknown task result"):
        depends_names("a.Exploded")
