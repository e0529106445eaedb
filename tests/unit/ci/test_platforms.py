"""Off Linux, tests of Linux-only parts skip, saying why (the macOS CI job runs the rest)."""

from __future__ import annotations

import sys
from typing import Any

import pytest


class _Item:
    def __init__(self, marker: Any) -> None:
        self.marker, self.added = marker, []

    def get_closest_marker(self, name: str) -> Any:
        return self.marker if name == "linux_only" else None

    def add_marker(self, marker: Any) -> None:
        self.added.append(marker)


@pytest.mark.parametrize("platform", ["darwin", "linux"])
def test_linux_only_tests_skip_elsewhere_with_their_reason(
    monkeypatch: pytest.MonkeyPatch, platform: str
) -> None:
    import conftest

    marked, plain = _Item(pytest.mark.linux_only("systemd units").mark), _Item(None)
    monkeypatch.setattr(sys, "platform", platform)
    conftest.pytest_collection_modifyitems(None, [marked, plain])  # type: ignore[arg-type]
    assert plain.added == []
    if platform == "linux":
        assert marked.added == []
    else:
        assert [m.mark.kwargs["reason"] for m in marked.added] == ["Linux only: systemd units"]
