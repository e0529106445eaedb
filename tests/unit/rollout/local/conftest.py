"""Fixtures the gateway's tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gateway_process import FakeModel


@pytest.fixture
def models() -> Iterator[dict[str, FakeModel]]:
    """Fake model servers a test starts by version; each stopped at the end."""
    made: dict[str, FakeModel] = {}
    yield made
    for m in made.values():
        m.stop()
