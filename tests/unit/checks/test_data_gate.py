"""The data gate on the example's good, drifted and broken data, and on unreadable input."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import fraud_data as fraud
import pandas as pd
import pytest

from launchbay.checks.data_gate import check_data
from launchbay.checks.verdict import Verdict
from launchbay.config import LaunchbayConfig, load_config


@pytest.fixture
def cfg(project: Callable[..., Path]) -> LaunchbayConfig:
    return load_config(project(rows=5000))


def _problems(report) -> dict[str, Verdict]:  # type: ignore[no-untyped-def]
    return {c.name: c.verdict for c in report.problems}


def test_good_data_passes_every_check(cfg: LaunchbayConfig) -> None:
    report, frame = check_data(cfg.resolve_path(cfg.data.path), cfg)
    assert report.verdict is Verdict.PASS, report.to_markdown()
    assert frame is not None and len(frame) == 5000
    drift = [c for c in report.checks if "drift" in c.name]
    assert len(drift) == len(cfg.data.features)  # every feature compared with the reference


def test_drifted_data_fails_on_drift_of_the_shifted_features(cfg: LaunchbayConfig, tmp_path: Path) -> None:
    path = tmp_path / "drifted.parquet"
    fraud.write(fraud.generate(5000, "drifted", seed=2), path)
    report, _ = check_data(str(path), cfg)
    assert report.verdict is Verdict.FAIL
    failed = {c.column for c in report.problems if c.verdict is Verdict.FAIL}
    assert {"amount", "hour", "distance_from_home_km"} <= failed
    assert all("drift" in c.name for c in report.problems)  # the schema itself is fine
    amount = next(c for c in report.checks if c.column == "amount" and "drift" in c.name)
    assert amount.observed > 0.2 and "median moved" in amount.detail


def test_broken_data_names_each_problem(cfg: LaunchbayConfig, tmp_path: Path) -> None:
    path = tmp_path / "broken.csv"
    fraud.write(fraud.generate(5000, "broken", seed=3), path)
    report, _ = check_data(str(path), cfg)
    problems = _problems(report)
    assert report.verdict is Verdict.FAIL
    columns = next(c for c in report.checks if c.name == "columns match the schema")
    assert "missing: device_age_days" in columns.observed and "unexpected: export_batch" in columns.observed
    assert problems["amount: type is float"] is Verdict.FAIL
    assert problems["hour: no nulls"] is Verdict.FAIL
    assert problems["distance_from_home_km: no nulls"] is Verdict.FAIL
    md = report.to_markdown()
    assert md.startswith("# data gate: FAIL") and "missing: device_age_days" in md


def test_missing_file_fails_with_a_report(cfg: LaunchbayConfig, tmp_path: Path) -> None:
    report, frame = check_data(str(tmp_path / "nope.parquet"), cfg)
    assert frame is None and report.verdict is Verdict.FAIL
    assert "file not found" in report.problems[0].detail


def test_unreadable_file_fails_with_a_report(cfg: LaunchbayConfig, tmp_path: Path) -> None:
    path = tmp_path / "garbage.parquet"
    path.write_bytes(b"this is not parquet")
    report, _ = check_data(str(path), cfg)
    assert report.verdict is Verdict.FAIL and "cannot read" in report.problems[0].detail


def test_empty_dataset_fails_on_row_count(cfg: LaunchbayConfig, tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    fraud.generate(10, "good").head(0).to_parquet(path)
    report, _ = check_data(str(path), cfg)
    assert _problems(report).get("enough rows") is Verdict.FAIL


def test_all_null_column_and_duplicate_ids_fail(cfg: LaunchbayConfig, tmp_path: Path) -> None:
    frame = fraud.generate(3000, "good", seed=5)
    frame["transactions_last_24h"] = pd.Series([None] * len(frame), dtype="Int64")
    frame.loc[:9, "transaction_id"] = "tx-duplicate"
    path = tmp_path / "nulls.parquet"
    frame.to_parquet(path)
    report = check_data(str(path), cfg)[0]
    problems = _problems(report)
    assert problems["transactions_last_24h: no nulls"] is Verdict.FAIL
    assert problems["transaction_id: unique"] is Verdict.FAIL
    nulls = next(c for c in report.checks if c.name == "transactions_last_24h: no nulls")
    assert "nan" not in nulls.detail.lower() and nulls.detail == "the rows have no value there"


def test_out_of_range_and_unknown_category_fail(cfg: LaunchbayConfig, tmp_path: Path) -> None:
    frame = fraud.generate(3000, "good", seed=5)
    frame.loc[:4, "hour"] = 31
    frame.loc[:4, "merchant_category"] = "crypto"
    path = tmp_path / "values.parquet"
    frame.to_parquet(path)
    report, _ = check_data(str(path), cfg)
    hour = next(c for c in report.checks if c.name == "hour: values in range")
    assert hour.verdict is Verdict.FAIL and hour.observed.startswith("5 bad rows")
    category = next(c for c in report.checks if c.name == "merchant_category: allowed values")
    assert category.verdict is Verdict.FAIL and "crypto" in category.detail


def test_report_is_written_as_markdown_and_json(cfg: LaunchbayConfig, tmp_path: Path) -> None:
    report, _ = check_data(str(tmp_path / "nope.csv"), cfg)
    md, js = report.write(tmp_path / "reports", "data_gate")
    assert md.read_text().startswith("# data gate: FAIL")
    doc = json.loads(js.read_text())
    assert doc["verdict"] == "FAIL" and doc["checks"][0]["verdict"] == "FAIL"


@pytest.mark.parametrize(
    ("task", "labels", "failed"),
    [
        ("binary", ["spam", "ham"], None),  # any two labels, not only 0/1
        ("binary", ["a", "b", "c"], "is_fraud (target): two classes"),
        ("binary", ["a"], "is_fraud (target): two classes"),
        ("multiclass", ["red", "green", "blue"], None),
        ("regression", [1.5, 200.0, -3.25], None),
        ("regression", ["high", "low"], "is_fraud (target): values are numbers"),
    ],
)
def test_the_target_is_checked_for_the_task(
    cfg: LaunchbayConfig, tmp_path: Path, task: str, labels: list[object], failed: str | None
) -> None:
    frame = pd.read_parquet(cfg.resolve_path(cfg.data.path))
    frame["is_fraud"] = [labels[i % len(labels)] for i in range(len(frame))]
    path = tmp_path / "labels.parquet"
    frame.to_parquet(path)
    variant = cfg.model_copy(update={"model": cfg.model.model_copy(update={"task": task})})
    report, _ = check_data(str(path), variant)
    assert _problems(report) == ({failed: Verdict.FAIL} if failed else {}), report.to_markdown()


def test_a_small_sample_of_good_data_raises_no_drift_alarm(cfg: LaunchbayConfig, tmp_path: Path) -> None:
    # The tester's case: 120 rows from the reference's own distribution failed 8 features on PSI.
    path = tmp_path / "few.parquet"
    fraud.write(fraud.generate(120, "good", seed=11), path)
    report, _ = check_data(str(path), cfg)
    drifted = [c for c in report.checks if "drift" in c.name and c.verdict is not Verdict.PASS]
    assert drifted == [], drifted
    noisy = [c for c in report.checks if "within sampling noise" in c.detail]
    assert all("at 120 rows vs" in c.detail for c in noisy)
