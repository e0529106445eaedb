"""Fixtures the end-to-end modules share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from webhooks import Receiver


@pytest.fixture(scope="module")
def webhook() -> Iterator[Receiver]:
    """A webhook receiver for the module's bay, told of every release of its scenarios."""
    receiver = Receiver()
    yield receiver
    receiver.close()
