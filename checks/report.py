"""Gate reports: one line per check (what, observed, expected, verdict), as Markdown and JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from launchbay.checks.verdict import Verdict, worst


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check in a gate."""

    name: str
    """What was checked, e.g. `amount: values between 0 and 20000`."""
    verdict: Verdict
    observed: Any = None
    expected: Any = None
    detail: str = ""
    """Why, in words, when the verdict is not PASS (examples of bad values, the error)."""
    column: str | None = None


@dataclass
class GateReport:
    """All checks of one gate and their combined verdict."""

    gate: str
    checks: list[CheckResult] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    """Gate-specific headline numbers (row count, AUC, ...)."""

    @property
    def verdict(self) -> Verdict:
        """The worst verdict of all checks (INCONCLUSIVE when there are none)."""
        return worst(c.verdict for c in self.checks)

    @property
    def problems(self) -> list[CheckResult]:
        """Checks that did not pass, worst first."""
        bad = [c for c in self.checks if c.verdict is not Verdict.PASS]
        return sorted(bad, key=lambda c: -c.verdict.rank)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form of the report."""
        return {
            "gate": self.gate,
            "verdict": self.verdict.value,
            "summary": self.summary,
            "checks": [{**asdict(c), "verdict": c.verdict.value} for c in self.checks],
        }

    def to_markdown(self) -> str:
        """A report a person reads: verdict first, then the problems, then every check."""
        lines = [f"# {self.gate}: {self.verdict.value}", ""]
        for key, value in self.summary.items():
            lines.append(f"- **{key}**: {_fmt(value)}")
        if self.summary:
            lines.append("")
        if self.problems:
            lines += ["## Problems", ""]
            for c in self.problems:
                why = f" -- {c.detail}" if c.detail else ""
                lines.append(
                    f"- **{c.verdict.value}** {c.name}: observed {_fmt(c.observed)}, "
                    f"expected {_fmt(c.expected)}{why}"
                )
            lines.append("")
        lines += ["## All checks", "", "| check | observed | expected | verdict |", "|---|---|---|---|"]
        for c in self.checks:
            lines.append(f"| {c.name} | {_fmt(c.observed)} | {_fmt(c.expected)} | {c.verdict.value} |")
        return "\n".join(lines) + "\n"

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        """Write `<stem>.md` and `<stem>.json` into `directory`; return both paths."""
        directory.mkdir(parents=True, exist_ok=True)
        md, js = directory / f"{stem}.md", directory / f"{stem}.json"
        md.write_text(self.to_markdown())
        js.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")
        return md, js


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        shown = ", ".join(_fmt(v) for v in list(value)[:8])
        return f"[{shown}{', ...' if len(value) > 8 else ''}]"
    return str(value).replace("|", "\\|")
