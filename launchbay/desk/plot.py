"""`launchbay history MODEL --plot FILE.png`: a release's timelines as one image for a ticket --
the same charts, from the same data, as its page."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from launchbay.desk.charts import COLOURS
from launchbay.desk.evidence import Page
from launchbay.errors import LaunchbayError, UsageError
from launchbay.rollout.wiring import Wired


def plot(page: Page, target: Path) -> Path:
    """Write the page's charts (one panel each, shared time axis) as a PNG; return its path."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in CI
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    charts = page.charts
    fig, axes = plt.subplots(len(charts), 1, figsize=(10, 2.4 * len(charts)), sharex=True, squeeze=False)
    for ax, chart in zip(axes[:, 0], charts, strict=True):
        for line in chart.lines:
            times = [datetime.fromtimestamp(t) for t, _ in line.points]
            values = [v for _, v in line.points]
            style = {"color": COLOURS.get(line.kind, "#495057"), "label": line.label, "linewidth": 1.6}
            if line.step:
                ax.step(times, values, where="post", **style)
            else:
                dash = "--" if line.kind == "shadow" else "-"
                ax.plot(times, values, marker="o", markersize=2.5, linestyle=dash, **style)
        highest = max((v for line in chart.lines for _, v in line.points), default=0.0)
        above = ""
        if chart.limit is not None and chart.limit <= 3 * highest:
            ax.axhline(chart.limit, color="#c92a2a", linestyle=":", linewidth=1, label="limit")
        elif chart.limit is not None:  # drawn, it would squash every line flat: say it instead
            above = f", limit {chart.limit:g} above the chart"
        ax.set_ylim(bottom=0)
        unit = f" ({chart.unit}{above})" if chart.unit else (f" ({above[2:]})" if above else "")
        where = " -- recorded analyses" if chart.source == "recorded" else ""
        ax.set_title(chart.title + unit + where, fontsize=10, loc="left")
        if not chart.lines:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", color="grey")
        else:
            ax.legend(loc="upper left", fontsize=8)
        ax.grid(True, alpha=0.3)
    axes[-1, 0].xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))  # type: ignore[no-untyped-call]
    r = page.release
    reason = str(page.doc.get("reason") or "").splitlines()[0][:100] if page.doc.get("reason") else ""
    fig.suptitle(f"{r.name}: {r.phase.value}" + (f" -- {reason}" if reason else ""), fontsize=11)
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target


def plot_release(ctx: Wired, model: str, release_id: int | None, target: Path) -> Page:
    """Plot the model's newest release (or `release_id`) to `target`; the page it was drawn from.

    Raises:
        UsageError: no such release of the model.
    """
    from typing import cast

    from launchbay.desk.evidence import Evidence
    from launchbay.desk.timeline import RangeSource
    from launchbay.rollout import wiring

    mine = [r for r in ctx.ledger.releases(model) if release_id is None or r.id == release_id]
    if not mine:
        which = f"release #{release_id}" if release_id is not None else "release"
        raise UsageError(f"{model} has no {which} in the ledger: nothing to plot")
    try:
        source: RangeSource | None = cast(RangeSource, wiring.metrics(ctx))
    except LaunchbayError:
        source = None  # the recorded analyses are drawn instead, and the plot says so
    page = Evidence(ctx, source).page(mine[0])
    plot(page, target)
    return page
