"""`launchbay advise` from stored measurements: table, JSON, plot, and clear errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from harness import Launchbay, assert_clean_error, lb

from launchbay.home import Home
from launchbay.rollout.measure import Level, Measured, path

MEASURED = Measured(
    model="fraud-detector",
    version="1",
    cold_start_s=7.0,
    levels=[Level(1, 160, 5.3, 11.2, 13.6, 0), Level(4, 210, 17.4, 24.6, 30.1, 0)],
    max_rps_within_slo=210,
    memory_mb=380,
    package_mb=452,
    slo_p95_ms=50,
    measured_at=0,
)


def _registered(lb_home: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{lb_home / 'mlflow.db'}"
    client = MlflowClient(uri, uri)  # both named: MLflow's global URIs are whatever a test set last
    client.create_registered_model("fraud-detector")
    client.create_model_version("fraud-detector", "file:///nowhere", run_id=None)
    client.set_registered_model_alias("fraud-detector", "champion", "1")


def test_advise_compares_options_for_two_profiles_with_json_and_a_plot(
    project: Callable[..., Path], lb_home: Path, tmp_path: Path
) -> None:
    config = project(rows=200)
    _registered(lb_home)
    no_data = lb("advise", "--requests-per-day", "1000", "--peak-rps", "1", cwd=config.parent)
    assert_clean_error(no_data, 2, "has no measurements", "launchbay measure fraud-detector@1")
    target = path(Home(lb_home), "fraud-detector", "1")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(MEASURED.to_dict()))

    steady = lb("advise", "--requests-per-day", "20000000", "--peak-rps", "500", "--json", cwd=config.parent)
    assert steady.returncode == 0, steady.stderr
    doc = json.loads(steady.stdout)
    assert doc["recommended"].startswith("kubernetes")
    assert {o["name"] for o in doc["options"]} == {
        "kubernetes-always-on",
        "kubernetes-autoscaled",
        "knative-scale-to-zero",
        "function",
        "edge",
    }
    (edge,) = [o for o in doc["options"] if o["name"] == "edge"]
    assert not edge["viable"] and "--runtime edge" in edge["ruled_out"][0]  # not measured yet
    sparse_profile = tmp_path / "sparse.yaml"
    sparse_profile.write_text("requests_per_day: 3000\npeak_rps: 5\nidle_share: 0.9\nbursts_per_day: 30\n")
    plot = tmp_path / "cost.png"
    sparse = lb("advise", "--traffic", str(sparse_profile), "--plot", str(plot), cwd=config.parent)
    assert sparse.returncode == 0, sparse.stderr
    verdicts = {
        cells[0]: cells[-1]
        for line in sparse.stdout.splitlines()
        if len(cells := [c.strip() for c in line.strip("│ ").split("│")]) == 6
    }
    assert verdicts["function"] == "recommended", verdicts  # functions cost least when mostly idle
    assert [o for o, v in verdicts.items() if v == "recommended"] == ["function"]
    assert "cheapest option changes" in sparse.stdout
    # On an 80-column terminal the options are still told apart (the numbers wrap instead)
    narrow = Launchbay(config.parent, env={"COLUMNS": "80"}).run("advise", "--traffic", str(sparse_profile))
    assert narrow.returncode == 0 and max(map(len, narrow.stdout.splitlines())) <= 80, narrow.stdout
    for option in ("kubernetes-always-on", "kubernetes-autoscaled", "knative-scale-to-zero"):
        assert option in narrow.stdout, narrow.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    bad = lb(
        "advise", "--requests-per-day", "10", "--peak-rps", "1", "--idle-share", "1.5", cwd=config.parent
    )
    assert_clean_error(bad, 2, "idle_share must be within [0, 1)")
