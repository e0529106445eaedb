"""The Markdown a release manager reads in the job summary before approving."""

from __future__ import annotations

from typing import Any

from launchbay.rollout.summary import markdown


def _state(*releases: dict[str, Any]) -> dict[str, Any]:
    version = {"version": 3, "metrics": {"roc_auc": 0.91234, "recall": 0.5}, "git_commit": "0123456789abcdef"}
    return {"registered": True, "aliases": {"champion": version}, "releases": list(releases)}


def _release(name: str, phase: str, checks: list[dict[str, Any]], reason: str = "") -> dict[str, Any]:
    return {"name": name, "phase": phase, "step": "canary 20%", "stable_version": "2", "author": "dana",
            "analysis": {"verdict": "fail", "checks": checks}, "reason": reason}  # fmt: skip


CHECK = {"check": "p95 latency", "observed": 41.0, "expected": "<= 30", "verdict": "fail",
         "detail": "Mann-Whitney U p=0.001 (n=240 vs 960)"}  # fmt: skip


def test_the_deciding_analysis_of_an_ended_release_is_shown_with_its_test() -> None:
    ended = _release("fd@v3#3", "rolled-back", [CHECK], "p95 | over")
    text = markdown("fraud-detector", _state(ended), ("roc_auc",))
    assert "| champion | 3 | 0.9123 | 0123456789 |" in text
    assert "### fd@v3#3: the analysis that decided it" in text
    assert "| p95 latency | 41.0 | <= 30 | fail | Mann-Whitney U p=0.001 (n=240 vs 960) |" in text
    assert "p95 \\| over" in text  # a reason cannot break the table
    rows = [line for line in text.splitlines() if line.startswith("|")]
    assert all(line.count("|") - line.count("\\|") == rows[0].count("|") for line in rows[:3])


def test_a_live_release_is_preferred_and_nothing_registered_says_so() -> None:
    live = _release("fd@v4#4", "canary", [{**CHECK, "verdict": "pass"}])
    text = markdown("fraud-detector", _state(live, _release("fd@v3#3", "rolled-back", [CHECK])), ("roc_auc",))
    assert "### fd@v4#4: latest analysis" in text and "decided it" not in text
    assert "No model registered yet." in markdown("m", {"registered": False}, ("roc_auc",))
    assert "No releases yet." in markdown("m", _state(), ("roc_auc",))
