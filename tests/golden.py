"""Golden files of rendered YAML, compared as documents rather than as text.

Key order, quoting and line wrapping are the YAML writer's business; what a golden file pins is
the objects. A mismatch shows a diff of both sides normalised (keys sorted). `UPDATE_GOLDEN=1`
rewrites the file for a person to review; in CI (`$CI` set) that is refused, so a change can
never be accepted by the run that should have caught it.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import pytest
import yaml


def documents(text: str) -> list[Any]:
    """The YAML documents of a text (empty ones dropped)."""
    return [d for d in yaml.safe_load_all(text) if d is not None]


def _normalised(docs: list[Any]) -> list[str]:
    return yaml.safe_dump_all(docs, sort_keys=True, default_flow_style=False, width=1000).splitlines()


def assert_golden(rendered: str, golden: Path) -> None:
    """`rendered` must hold the same documents as `golden`."""
    if os.environ.get("UPDATE_GOLDEN"):
        if os.environ.get("CI"):
            pytest.fail("UPDATE_GOLDEN is refused in CI: regenerate locally, review the diff, commit it")
        golden.write_text(rendered)
    expected, actual = documents(golden.read_text()), documents(rendered)
    if actual != expected:
        diff = "\n".join(
            difflib.unified_diff(
                _normalised(expected), _normalised(actual), str(golden), "rendered", lineterm="", n=2
            )
        )
        hint = "review it; UPDATE_GOLDEN=1 rewrites it"
        pytest.fail(f"rendered YAML differs from {golden.name} ({hint}):\n{diff}")
