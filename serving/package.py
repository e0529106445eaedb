"""Package a verified, signed model directory as a Bento (no Docker needed).

The Bento carries the model directory exactly as signed (model files, `serving.json`,
`provenance.json`, `model.sig`) as a BentoML model, plus launchbay's service code. The model's tag
is baked in as `$LAUNCHBAY_MODEL`; trusted keys are not (the deployment provides them).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from launchbay.home import Home

SOURCE_ROOT = Path(__file__).resolve().parent.parent
"""Directory holding launchbay's packages: the Bento's build context."""


SERVICE_PACKAGES = [
    "bentoml==1.4.*",
    "scikit-learn==1.9.*",
    "skops",
    "numpy",
    "pandas",
    "pyyaml",
    "model-signing==1.1.*",
    "pyopenssl",
    "pydantic>=2.14",
]
"""What the service needs installed (the Bento's python packages; also what a package ships)."""

SIGNED_DIR = "signed"
"""Subdirectory of the BentoML model holding the signed files (BentoML adds its own model.yaml)."""


def signed_dir(stored_model_path: str | Path) -> Path:
    """Where the signed model directory lives inside a stored BentoML model."""
    return Path(stored_model_path) / SIGNED_DIR


def bentoml_home(home: Home) -> Path:
    """BentoML's store under launchbay's state directory."""
    return home.root / "bentoml"


def use_store(home: Home) -> None:
    """Point BentoML at launchbay's store; must run before `bentoml` is imported."""
    os.environ["BENTOML_HOME"] = str(bentoml_home(home))
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")


def tag(model: str, version: str) -> str:
    """The BentoML tag of a model version (used for both the model and the Bento)."""
    return f"{model}:v{version}"


def build(model_dir: Path, model: str, version: str, labels: dict[str, str]) -> str:
    """Store the model directory and build the Bento; return the Bento's tag. Idempotent."""
    import bentoml
    from bentoml._internal.bento.build_config import BentoEnvSchema
    from bentoml.exceptions import NotFound

    t = tag(model, version)
    with contextlib.suppress(NotFound):
        bentoml.bentos.delete(t)
    with contextlib.suppress(NotFound):
        bentoml.models.delete(t)
    with bentoml.models.create(t, labels=labels) as stored:
        shutil.copytree(model_dir, signed_dir(stored.path))
    os.environ["LAUNCHBAY_MODEL"] = t  # the service module reads it when the build imports it
    bento = bentoml.bentos.build(
        "serving.service:ModelService",
        name=model,
        version=f"v{version}",
        labels=labels,
        models=[t],
        include=["serving/*.py", "checks/*.py", "launchbay/*.py", "pipelines/**/*.py"],
        exclude=["**/__pycache__"],
        envs=[BentoEnvSchema(name="LAUNCHBAY_MODEL", value=t)],
        python={
            "lock_packages": False,
            "packages": SERVICE_PACKAGES,
        },
        build_ctx=str(SOURCE_ROOT),
    )
    return str(bento.tag)
