"""Rows the champion trained on are left out of the comparison, or named when too few remain."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from launchbay.checks.leakage import digests, overlap
from launchbay.checks.verdict import Verdict


def _rows(n: int, start: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    x = pd.DataFrame({"a": np.arange(start, start + n), "b": np.arange(start, start + n) * 0.5})
    return x, (np.arange(start, start + n) % 2)


def test_digests_follow_content_not_position() -> None:
    x, y = _rows(5)
    shuffled = x.iloc[::-1]
    assert set(digests(x, y)) == set(digests(shuffled, y[::-1]))
    assert len(set(digests(x, 1 - y)) & set(digests(x, y))) == 0  # another target: another row


def test_held_out_rows_the_champion_learned_are_left_out_when_enough_remain() -> None:
    heldout = digests(*_rows(200))
    champion_train = digests(*_rows(500, start=150))  # it learned rows 150..649: 50 of ours
    o = overlap(heldout, champion_train, "1", "warn", 50)
    assert o.unseen is not None and int(o.unseen.sum()) == 150
    assert o.check.verdict is Verdict.PASS
    assert "50 of 200 held-out rows were in v1's training data" in o.check.detail


@pytest.mark.parametrize(("policy", "verdict"), [("warn", Verdict.PASS), ("fail", Verdict.FAIL)])
def test_too_few_unseen_rows_warn_or_fail_as_configured(policy: str, verdict: Verdict) -> None:
    heldout = digests(*_rows(100))
    o = overlap(heldout, digests(*_rows(500, start=20)), "3", policy, 50)  # only 20 unseen
    assert o.unseen is None and o.check.verdict is verdict
    assert "only 20 unseen" in o.check.detail and o.check.detail.startswith("warning") is (policy == "warn")


def test_no_overlap_and_no_record_both_compare_on_every_row() -> None:
    heldout = digests(*_rows(100))
    assert overlap(heldout, digests(*_rows(100, start=1000)), "1", "warn", 50).unseen is None
    unknown = overlap(heldout, None, "1", "warn", 50)
    assert unknown.unseen is None and "registered before" in unknown.check.detail
