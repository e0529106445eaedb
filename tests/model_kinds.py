"""Model repositories of each kind launchbay supports, made the way a user makes theirs.

`make_repository` writes generated data (small, seeded, numeric), runs `launchbay init` on it and
adds the kind's training module; `roll_out_twice` takes it through the README's commands: the
first `launchbay run` (version 1 becomes champion and serves), a second one with demo traffic
(version 2 through shadow and canary steps, promoted), both analysed from Prometheus.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import yaml
from harness import Launchbay
from projects import FAST_ROLLOUT

TRAINERS = {
    "xgboost": '''
from xgboost import XGBClassifier


def train(features, target, params):
    """A gradient-boosted binary classifier (labels 0/1, as XGBoost wants them)."""
    model = XGBClassifier(n_estimators=40, max_depth=3, learning_rate=0.2, random_state=0)
    return model.fit(features, target)
''',
    "lightgbm": '''
from lightgbm import LGBMClassifier


def train(features, target, params):
    """A gradient-boosted classifier over three text labels."""
    return LGBMClassifier(n_estimators=40, num_leaves=15, random_state=0, verbose=-1).fit(features, target)
''',
}


@dataclass(frozen=True)
class Kind:
    """One kind of model: its task, its library, and what its data looks like."""

    name: str
    task: str
    library: str = "sklearn"

    def frame(self, rows: int = 1500, seed: int = 0) -> pd.DataFrame:
        """Seeded data with five numeric features and a target of this kind (a seed is a different
        problem, not more rows of the same one: ask a model about rows of its own seed)."""
        from sklearn.datasets import make_classification, make_regression

        if self.task == "regression":
            x, y = make_regression(
                n_samples=rows, n_features=5, n_informative=4, noise=5.0, random_state=seed
            )
            target: Any = np.round(y + 200.0, 3)  # a value in a realistic range, never near zero
        else:
            classes = 2 if self.task == "binary" else 3
            x, y = make_classification(
                n_samples=rows, n_features=5, n_informative=4, n_redundant=0, n_classes=classes,
                class_sep=1.5, random_state=seed,
            )  # fmt: skip
            labels = np.asarray(["red", "green", "blue"]) if self.task == "multiclass" else np.asarray([0, 1])
            target = labels[y]
        frame = pd.DataFrame(np.round(x, 4), columns=[f"f{i}" for i in range(1, 6)])
        frame["label"] = target
        return frame


KINDS = {
    "multiclass": Kind("multiclass", "multiclass"),
    "regression": Kind("regression", "regression"),
    "xgboost": Kind("xgboost", "binary", "xgboost"),
    "lightgbm": Kind("lightgbm", "multiclass", "lightgbm"),
}


def make_repository(root: Path, kind: Kind, bay: Launchbay) -> Path:
    """`launchbay init` on the kind's data in `root`; the kind's trainer; a fast rollout."""
    (root / "data").mkdir(parents=True)
    kind.frame().to_parquet(root / "data" / "train.parquet", index=False)
    res = bay.run("init", str(root), "--data", str(root / "data" / "train.parquet"), "--task", kind.task,
                  "--name", f"{kind.name}-model", "--json")  # fmt: skip
    assert res.returncode == 0, res.output
    config = root / "launchbay.yaml"
    doc = yaml.safe_load(config.read_text())
    if kind.library != "sklearn":
        (root / "boosted.py").write_text(TRAINERS[kind.library])
        doc["model"].update({"train": "boosted:train", "code": ["boosted.py"]})
    doc["rollout"].update(FAST_ROLLOUT)
    doc["rollout"]["shadow"] = {"duration": "4s"}
    doc["data"]["min_rows"] = 100
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    return config


def roll_out_twice(bay: Launchbay) -> dict[str, Any]:
    """First run (v1 serves), second run with traffic (v2 promoted); returns `status --json`."""
    assert bay.run("keys", "init").returncode == 0
    first = bay.run("run", timeout=600)
    assert first.returncode == 0, first.output
    second = bay.run("run", "--traffic", "40", timeout=600)
    assert second.returncode == 0, second.output
    assert "v2#2: promoted" in second.stdout, second.stdout[-3000:]
    return bay.status()


@contextmanager
def rolled_out(tmp: Path, kind: Kind) -> Iterator[tuple[Launchbay, dict[str, Any]]]:
    """A repository of `kind` in `tmp/repo`, rolled out twice; its processes stopped at the end."""
    bay = Launchbay(tmp / "repo", home=tmp / "repo" / ".launchbay")
    make_repository(bay.cwd, kind, bay)
    try:
        yield bay, roll_out_twice(bay)
    finally:
        bay.run("down", timeout=120)


def ask(url: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """POST rows to the gateway's /predict."""
    resp = httpx.post(f"{url}/predict", json={"rows": rows}, timeout=30)
    assert resp.status_code == 200, resp.text
    doc: dict[str, Any] = resp.json()
    return doc


def shadow_checks(bay: Launchbay, model: str) -> set[str]:
    """Names of the checks the shadow analysis of release 2 made."""
    events = json.loads(bay.run("history", model, "--json").stdout)
    names = set()
    for e in events:
        if e["release_id"] == 2 and e["action"] == "analysis" and e["phase_to"] == "shadow":
            names |= {c["check"] for c in e["evidence"]["checks"] if c["verdict"] == "PASS"}
    return names
