"""The plot of `launchbay advise`: monthly cost of each option against traffic, crossovers marked."""

from __future__ import annotations

from pathlib import Path

from launchbay.rollout.advise import OPTIONS, Prices, ServingProfile, TrafficProfile, scale


def cost_plot(
    m: ServingProfile,
    t: TrafficProfile,
    p: Prices,
    volumes: list[float],
    crossovers: list[tuple[float, str, str]],
    target: Path,
) -> None:
    """Write a PNG: log-log monthly cost per option over `volumes`, the profile's volume and crossovers."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in CI
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5))
    for make in OPTIONS:
        costs = [make(m, scale(t, v), p).monthly_cost for v in volumes]
        ax.plot(volumes, [max(c, 1e-4) for c in costs], label=make(m, t, p).name, linewidth=2)
    for v, _a, b in crossovers:
        ax.axvline(v, color="grey", linestyle=":", linewidth=1)
        ax.annotate(f"-> {b}", (v, ax.get_ylim()[1]), rotation=90, va="top", ha="right", fontsize=8)
    ax.axvline(t.requests_per_day, color="black", linewidth=1.5, label="your traffic")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("requests per day (same shape of traffic)")
    ax.set_ylabel("USD per month")
    ax.set_title("Monthly cost by deployment option")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper left")
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=110)
    plt.close(fig)
