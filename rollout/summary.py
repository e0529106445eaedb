"""A model's state as GitHub-flavoured Markdown: what a release manager reads in a job summary
before approving (`launchbay status --markdown >> "$GITHUB_STEP_SUMMARY"`).

The same facts as `launchbay status`: registry aliases with their held-out metrics and commits,
the releases, and every check of the deciding analysis with observed and expected values and
the test behind it. Cells are escaped: a reason or a commit message cannot break the table.
"""

from __future__ import annotations

from typing import Any

from launchbay.rollout.engine.phases import Phase


def _cell(value: Any) -> str:
    text = "-" if value is None or value == "" else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return [*lines, ""]


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else _cell(value)


def markdown(model: str, state: dict[str, Any], metrics: tuple[str, ...]) -> str:
    """The Markdown summary of `launchbay status --json`'s `state` (`metrics`: held-out ones shown)."""
    out = [f"## {model}", ""]
    if not state.get("registered"):
        return "\n".join([*out, "No model registered yet.", ""])
    out += _table(
        ["alias", "version", *metrics, "git commit"],
        [
            [alias, v["version"], *(_num(v["metrics"].get(m)) for m in metrics), (v["git_commit"] or "")[:10]]
            for alias, v in state["aliases"].items()
        ],
    )
    if (cmp := state.get("comparison")) is not None and not cmp.get("same_rows"):
        out += [f"Champion and challenger: {_cell(cmp.get('note'))}", ""]
    releases = state.get("releases") or []
    if not releases:
        return "\n".join([*out, "No releases yet.", ""])
    out += ["### Releases", ""]
    out += _table(
        ["release", "phase", "step", "stable", "author", "analysis", "why it ended"],
        [
            [r["name"], r["phase"], r["step"], r["stable_version"], r["author"],
             (r.get("analysis") or {}).get("verdict"), r.get("reason")]
            for r in releases
        ],
    )  # fmt: skip
    shown = next((r for r in releases if Phase(r["phase"]).live), releases[0])
    analysis = shown.get("analysis") or {}
    if analysis.get("checks"):
        which = "latest analysis" if Phase(shown["phase"]).live else "the analysis that decided it"
        out += [f"### {shown['name']}: {which}", ""]
        out += _table(
            ["check", "observed", "expected", "verdict", "detail"],
            [[c["check"], c.get("observed"), c.get("expected"), c["verdict"], c.get("detail")]
             for c in analysis["checks"]],
        )  # fmt: skip
    else:
        out += [f"{shown['name']} has no analysis yet.", ""]
    return "\n".join(out)
