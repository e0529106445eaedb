from launchbay.checks.verdict import Verdict, worst


def test_worst_verdict_wins_in_order_pass_inconclusive_error_fail() -> None:
    assert worst([Verdict.PASS, Verdict.PASS]) is Verdict.PASS
    assert worst([Verdict.PASS, Verdict.INCONCLUSIVE]) is Verdict.INCONCLUSIVE
    assert worst([Verdict.INCONCLUSIVE, Verdict.ERROR, Verdict.PASS]) is Verdict.ERROR
    assert worst([Verdict.ERROR, Verdict.FAIL, Verdict.PASS]) is Verdict.FAIL


def test_no_evidence_is_inconclusive_not_pass() -> None:
    assert worst([]) is Verdict.INCONCLUSIVE


def test_only_pass_is_ok() -> None:
    assert [v for v in Verdict if v.ok] == [Verdict.PASS]
