"""Which image a version runs in a cluster: the digest CI recorded, checked, waited for."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from rollout_fakes import FakeRegistry, cluster_config, pushed

from launchbay.errors import UsageError
from launchbay.rollout.targets import images


@pytest.mark.parametrize(
    ("ref", "repo"),
    [
        ("ghcr.io/org/m:v3", "ghcr.io/org/m"),
        ("ghcr.io/org/m@sha256:" + "a" * 64, "ghcr.io/org/m"),
        ("registry.local:5000/m:v3", "registry.local:5000/m"),
        ("registry.local:5000/team/m", "registry.local:5000/team/m"),
        ("m:v1", "m"),
    ],
)
def test_the_repository_of_a_reference_keeps_a_registry_port(ref: str, repo: str) -> None:
    assert images.repository(ref) == repo


def test_recording_accepts_only_a_digest_in_the_configured_repository(tmp_path: Path) -> None:
    cfg = cluster_config("kubernetes", tmp_path / "kc")
    registry = FakeRegistry()
    assert images.record(registry, cfg, "fraud-detector", "4", pushed("4"), "ci") == pushed("4")
    assert images.recorded(registry, "fraud-detector", "4") == pushed("4")
    assert registry.tags["4"][images.RECORDED_BY_TAG] == "ci"
    with pytest.raises(UsageError, match="not a tag"):
        images.record(registry, cfg, "fraud-detector", "5", "ghcr.io/launchbay/fraud-detector:v5", "ci")
    short = "ghcr.io/launchbay/fraud-detector@sha256:ab"
    with pytest.raises(UsageError, match="64 hex"):
        images.record(registry, cfg, "fraud-detector", "5", short, "ci")
    with pytest.raises(UsageError, match=r"is in repository docker\.io/evil/x"):
        images.record(registry, cfg, "fraud-detector", "5", pushed("5", "docker.io/evil/x"), "ci")
    assert images.recorded(registry, "fraud-detector", "5") is None  # nothing half-recorded


def test_the_release_step_waits_for_ci_to_record_the_image_then_gives_up_saying_how(tmp_path: Path) -> None:
    cfg = cluster_config("kubernetes", tmp_path / "kc")
    registry = FakeRegistry()
    said: list[str] = []
    timer = threading.Timer(0.15, lambda: registry.tag("fraud-detector", "7", images.IMAGE_TAG, pushed("7")))
    timer.start()
    try:
        found = images.wait(cfg, registry, "fraud-detector", "7", timeout=5, say=said.append, poll=0.05)
    finally:
        timer.cancel()
    assert found == pushed("7")
    assert said == ["waiting up to 5 s for the serving image of fraud-detector v7 to be recorded"]
    with pytest.raises(UsageError, match=r"waited 0.2 s: .*record-image fraud-detector@8"):
        images.wait(cfg, registry, "fraud-detector", "8", timeout=0.2, say=said.append, poll=0.05)
