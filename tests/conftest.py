"""Shared fixtures: an isolated state directory and a small example project on disk."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from checks.signature import generate_keypair
from pipelines.example import fraud

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_CONFIG = REPO / "launchbay.yaml"


@pytest.fixture
def lb_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private LAUNCHBAY_HOME (and no inherited MLflow URI) for one test."""
    home = tmp_path / "home"
    monkeypatch.setenv("LAUNCHBAY_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("LAUNCHBAY_CONFIG", raising=False)
    return home


def write_project(
    root: Path, rows: int = 8000, variant: fraud.Variant = "good", overrides: dict[str, Any] | None = None
) -> Path:
    """Write the example config and data under `root`; return the config path.

    `overrides` maps dotted key paths (e.g. "gates.min_auc") to values.
    """
    data = root / "data"
    fraud.write(fraud.generate(rows, "good", seed=7), data / "reference.parquet")
    fraud.write(fraud.generate(rows, variant, seed=1), data / "transactions.parquet")
    cfg = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    for dotted, value in (overrides or {}).items():
        node = cfg
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    path = root / "launchbay.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture
def project(tmp_path: Path, lb_home: Path) -> Callable[..., Path]:
    """Factory: `project(rows=..., variant=..., overrides=...)` -> config path in a temp dir."""
    counter = iter(range(1000))

    def make(**kwargs: Any) -> Path:
        root = tmp_path / f"project{next(counter)}"
        root.mkdir()
        if not (lb_home / "keys" / "signing-key.pem").exists():
            generate_keypair(lb_home / "keys")  # the pipeline signs what it registers
        return write_project(root, **kwargs)

    return make
