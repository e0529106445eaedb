"""Live progress of a pipeline run and its closing summary, drawn with rich.

The executor reports phase changes from worker threads; `PipelineView` keeps the latest state of
each task and redraws a small table (step, state, elapsed time) several times a second.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from launchbay.pipelines.executor import TaskPhase, TaskRun, WorkflowRun

_STYLE = {
    TaskPhase.PENDING: ("waiting", "dim"),
    TaskPhase.RUNNING: ("running", "cyan"),
    TaskPhase.SUCCEEDED: ("passed", "green"),
    TaskPhase.FAILED: ("FAILED", "bold red"),
    TaskPhase.SKIPPED: ("skipped", "yellow"),
    TaskPhase.OMITTED: ("not run", "dim"),
}


class PipelineView:
    """A live table of the pipeline's steps, fed by executor callbacks."""

    def __init__(self, console: Console, stages: list[str]) -> None:
        self.console = console
        self.stages = stages
        self.tasks: dict[str, TaskRun] = {}
        self._lock = threading.Lock()
        self._live: Live | None = None

    def update(self, task: TaskRun) -> None:
        """Executor callback: remember the task's latest state."""
        with self._lock:
            self.tasks[task.name] = task

    def __enter__(self) -> PipelineView:
        self._live = Live(self, console=self.console, refresh_per_second=8, transient=True)
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)

    def __rich__(self) -> Any:
        table = Table(box=None, show_header=False, padding=(0, 2))
        now = time.time()
        with self._lock:
            for name in self.stages:
                t = self.tasks.get(name)
                phase = t.phase if t else TaskPhase.PENDING
                label, style = _STYLE[phase]
                status: Any = (
                    Spinner("dots", text=Text(label, style=style))
                    if phase is TaskPhase.RUNNING
                    else Text(label, style=style)
                )
                elapsed = ""
                if t and t.started:
                    elapsed = f"{(t.finished or now) - t.started:5.1f}s"
                table.add_row(Text(name, style="bold"), status, elapsed)
        return Panel(table, title="launchbay run", border_style="blue", expand=False)


def summary(run: WorkflowRun, stages: list[str]) -> Group:
    """The table printed when a run ends: every step, its state, time and main outputs."""
    table = Table(
        title=f"pipeline {'succeeded' if run.succeeded else 'FAILED'} in {run.seconds:.1f}s",
        title_style="bold green" if run.succeeded else "bold red",
    )
    table.add_column("step")
    table.add_column("result")
    table.add_column("time", justify="right")
    table.add_column("outputs")
    for name in stages:
        t = run.tasks.get(name)
        if t is None:
            table.add_row(name, Text("not requested", style="dim"), "", "")
            continue
        label, style = _STYLE[t.phase]
        outputs = ", ".join(f"{k}={_short(v)}" for k, v in t.outputs.items())
        table.add_row(name, Text(label, style=style), f"{t.seconds:.1f}s" if t.started else "", outputs)
    parts: list[Any] = [table]
    if failed := run.failed:
        parts.append(
            Panel(
                Text(failed.message or "failed"),
                title=f"step {failed.name} failed",
                border_style="red",
                expand=False,
            )
        )
    return Group(*parts)


def _short(value: str) -> str:
    return value if len(value) <= 36 else value[:16] + "…" + value[-16:]


def gate_table(report: dict[str, Any]) -> Table:
    """The model gate's checks as `launchbay run` prints them: each metric on the held-out rows,
    against its floor, and the candidate against the champion on the same rows."""
    summary = report.get("summary", {})
    rows = summary.get("held-out rows", "?")
    champion = summary.get("champion", "no champion yet")
    table = Table(
        title=f"model gate {report.get('verdict', '?')}: {rows} held-out rows, vs {champion}",
        title_justify="left",
    )
    for col in ("check", "candidate", "expected", "verdict", "detail"):
        table.add_column(col, overflow="fold")
    for c in report.get("checks", []):
        verdict = str(c.get("verdict", ""))
        style = "green" if verdict == "PASS" else "red"
        observed = c.get("observed")
        table.add_row(
            str(c.get("name", "")),
            "-" if observed is None else str(observed),
            str(c.get("expected") or ""),
            Text(verdict, style=style),
            str(c.get("detail") or ""),
        )
    return table


def variant_line(report: dict[str, Any]) -> Text:
    """What will be served, in one line: the ONNX variant and how closely it matched, or why not."""
    summary = report.get("summary", {})
    rows = summary.get("held-out rows", "?")
    checks = report.get("checks", [])
    if report.get("verdict") == "PASS":
        diff = next((c.get("observed") for c in checks if str(c.get("name", "")).startswith("largest")), "?")
        return Text.assemble(
            ("ONNX variant kept", "green"),
            f": largest score difference {diff} on {rows} held-out rows "
            f"({summary.get('precision', '?')}); the runtimes serve it",
        )
    problems = [c for c in checks if c.get("verdict") != "PASS"]
    why = "; ".join(f"{c.get('name')}: {c.get('detail') or c.get('observed')}" for c in problems) or "?"
    return Text.assemble(("served natively", "yellow"), f" (no ONNX variant): {why}")
