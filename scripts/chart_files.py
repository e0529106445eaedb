"""Writes charts/launchbay/files/ (the Prometheus scrape config, alert rules and Grafana dashboard
the chart installs) from launchbay.pipelines.monitoring; `--check` fails when they are stale."""

from __future__ import annotations

import sys
from pathlib import Path

from launchbay.pipelines.monitoring import chart_files

CHART = Path(__file__).resolve().parents[1] / "charts" / "launchbay"


def main() -> int:
    check = "--check" in sys.argv[1:]
    stale = []
    for rel, text in chart_files().items():
        path = CHART / rel
        if path.exists() and path.read_text() == text:
            continue
        stale.append(rel)
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if check and stale:
        print(f"stale in {CHART}: {', '.join(stale)}; run: python scripts/chart_files.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
