"""The data gate's report reused for the same bytes under the same rules, and only then."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import fraud_data as fraud
import pytest

from launchbay.checks import data_gate_cache
from launchbay.checks.data_gate import check_data
from launchbay.checks.verdict import Verdict
from launchbay.config import LaunchbayConfig, load_config
from launchbay.storage import file_digest


@pytest.fixture
def cfg(project: Callable[..., Path]) -> LaunchbayConfig:
    return load_config(project(rows=2000))


def _key(cfg: LaunchbayConfig, path: str) -> str:
    name = data_gate_cache.key(cfg, file_digest(path))
    assert name is not None
    return name


def test_a_kept_report_comes_back_whole_and_says_it_was_reused(cfg: LaunchbayConfig, tmp_path: Path) -> None:
    path = tmp_path / "drifted.parquet"
    fraud.write(fraud.generate(2000, "drifted", seed=2), path)
    report, _ = check_data(str(path), cfg)
    assert report.verdict is Verdict.FAIL  # a failing report is as reusable as a passing one
    name = _key(cfg, str(path))
    data_gate_cache.save(tmp_path / "cache", name, report)

    copy = tmp_path / "elsewhere.parquet"
    shutil.copyfile(path, copy)  # the same bytes under another name: the same key
    assert _key(cfg, str(copy)) == name
    again = data_gate_cache.load(tmp_path / "cache", name, str(copy))
    assert again is not None
    assert again.checks == report.checks
    assert again.verdict is Verdict.FAIL
    assert again.summary["data"] == str(copy) and again.summary["rows"] == 2000
    assert data_gate_cache.REUSED in again.summary
    assert "reused" in again.to_markdown()


def test_any_change_that_could_change_the_verdict_is_another_key(
    cfg: LaunchbayConfig, tmp_path: Path
) -> None:
    data = cfg.resolve_path(cfg.data.path)
    base = _key(cfg, data)
    other = tmp_path / "other.parquet"
    fraud.write(fraud.generate(2000, "good", seed=99), other)
    assert _key(cfg, str(other)) != base  # other bytes

    def changed(**update: object) -> LaunchbayConfig:
        return cfg.model_copy(update=update)

    drift = cfg.gates.drift.model_copy(update={"threshold": 0.5})
    assert _key(changed(gates=cfg.gates.model_copy(update={"drift": drift})), data) != base
    assert _key(changed(gates=cfg.gates.model_copy(update={"max_null_fraction": 0.1})), data) != base
    assert _key(changed(data=cfg.data.model_copy(update={"min_rows": 5})), data) != base
    assert _key(changed(model=cfg.model.model_copy(update={"task": "regression"})), data) != base
    # The reference's bytes, not its name.
    ref = Path(cfg.resolve_path(cfg.data.reference or ""))
    fraud.write(fraud.generate(2000, "good", seed=8), ref)
    assert _key(cfg, data) != base


def test_an_unreadable_reference_or_kept_file_is_never_trusted(cfg: LaunchbayConfig, tmp_path: Path) -> None:
    data = cfg.resolve_path(cfg.data.path)
    missing = cfg.model_copy(update={"data": cfg.data.model_copy(update={"reference": "nope.parquet"})})
    assert data_gate_cache.key(missing, file_digest(data)) is None  # the gate reports it each time
    name = _key(cfg, data)
    (tmp_path / f"{name}.json").write_text('{"gate": "data gate", "checks": [{"name": ')
    assert data_gate_cache.load(tmp_path, name, data) is None
    assert data_gate_cache.load(tmp_path, "absent", data) is None
