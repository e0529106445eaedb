"""`serving.json`: what a service must know about its model, stored (and signed) with the model.

It is written by the sign step from `launchbay.yaml` and covered by the model's signature, so the
request schema a service enforces is the one that was reviewed with the model, not whatever the
serving host's config says today.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt, StrictStr

from launchbay.config import LaunchbayConfig
from launchbay.config.model import FeatureSpec, Task

SPEC_FILE = "serving.json"


class ServingSpec(BaseModel):
    """The model's identity, its input features (in order) and its decision threshold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    version: str
    features: dict[str, FeatureSpec]
    """Input features in the order the model receives them."""
    decision_threshold: float
    """binary: the positive class (the second label) is predicted at or above this score."""
    task: Task = "binary"
    classes: list[StrictInt | StrictStr | StrictBool] | None = None
    """Class labels of a classifier, in the order of its probabilities."""

    @classmethod
    def from_config(
        cls, cfg: LaunchbayConfig, version: str, classes: list[Any] | None = None
    ) -> ServingSpec:
        """The spec of version `version` of the configured model (`classes`: the trained model's)."""
        return cls(
            model=cfg.model.name,
            version=str(version),
            features=dict(cfg.data.features),
            decision_threshold=cfg.gates.decision_threshold,
            task=cfg.model.task,
            classes=classes,
        )

    def write(self, model_dir: Path) -> Path:
        """Write `serving.json` into a model directory."""
        path = model_dir / SPEC_FILE
        path.write_text(json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=False) + "\n")
        return path

    @classmethod
    def read(cls, model_dir: Path) -> ServingSpec:
        """Read `serving.json` from a model directory."""
        return cls.model_validate_json((model_dir / SPEC_FILE).read_text())
