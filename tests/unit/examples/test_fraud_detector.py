"""The example repository's own script writes its data the way `make run` and the tests use it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from projects import EXAMPLE

SCRIPT = EXAMPLE / "fraud_data.py"


def _write(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("variant", ["good", "drifted", "broken"])
def test_the_data_script_writes_each_variant(variant: str, tmp_path: Path) -> None:
    out = tmp_path / f"{variant}.parquet"
    res = _write("--variant", variant, "--rows", "500", "--seed", "3", "-o", str(out), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    frame = pd.read_parquet(out)
    assert len(frame) == 500
    assert ("device_age_days" in frame.columns) is (variant != "broken")
    again = tmp_path / "again.parquet"
    assert (
        _write(
            "--variant", variant, "--rows", "500", "--seed", "3", "-o", str(again), cwd=tmp_path
        ).returncode
        == 0
    )
    pd.testing.assert_frame_equal(frame, pd.read_parquet(again))  # same seed, same data


def test_the_data_script_refuses_an_unknown_variant_or_file_type(tmp_path: Path) -> None:
    res = _write("--variant", "weird", "-o", str(tmp_path / "x.parquet"), cwd=tmp_path)
    assert res.returncode == 2 and "invalid choice: 'weird'" in res.stderr
    res = _write("-o", str(tmp_path / "x.json"), cwd=tmp_path)
    assert res.returncode == 2 and "expected a .parquet or .csv file name" in res.stderr
