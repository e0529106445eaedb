"""What the serving packages' tests share: a Bento's sources and its signed model, made once per module."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from model_dirs import EXAMPLE, signed_example

from launchbay.serving.package import service_sources


@pytest.fixture(scope="module")
def bento(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A Bento's src (launchbay's service floors + the user's model code) and its signed model."""
    root = tmp_path_factory.mktemp("bento")
    signed, key = signed_example(root)
    src = root / "src"
    service_sources(src)
    shutil.copy(EXAMPLE / "fraud_model.py", src / "fraud_model.py")
    (src / "bentofile.yaml").write_text("service: x\n")
    return src, signed, key
