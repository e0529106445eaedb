"""launchbay's pinned dependency set installs from wheels on Python 3.11-3.13, on Linux
(x86_64, aarch64) and macOS (arm64, x86_64): checked with pip's finder against PyPI
(tests/resolution.py says how), so a pin that cannot install somewhere fails here."""

from __future__ import annotations

import pytest
import resolution
from packaging.requirements import Requirement

pytestmark = pytest.mark.slow  # ~2.5 min of CPU: pip reads ~240 index pages per Python


@pytest.fixture(scope="module")
def results() -> dict[tuple[str, str], resolution.Resolution]:
    return resolution.matrix()


@pytest.mark.parametrize("platform", list(resolution.PLATFORMS))
@pytest.mark.parametrize("python", resolution.PYTHONS)
def test_the_pinned_set_installs_from_wheels(results, python: str, platform: str) -> None:
    res = results[python, platform]
    assert res.ok, f"Python {python} on {platform}:\n" + "\n".join(res.problems)
    # The set is the closure under the target's markers: macOS gets xgboost, Linux xgboost-cpu,
    # and nothing of a Linux-only dependency (pip alone would add xgboost's nvidia-nccl-cu12).
    names = set(res.installed)
    assert {"mlflow", "onnxruntime", "psycopg-binary", "pytest"} <= names
    if platform.startswith("macos"):
        assert "xgboost" in names and "xgboost-cpu" not in names
        assert "nvidia-nccl-cu12" not in names
    else:
        assert "xgboost-cpu" in names and "xgboost" not in names


def test_a_pin_without_a_wheel_for_the_platform_is_named() -> None:
    # onnxruntime stopped publishing Intel macOS wheels after 1.23.2 (constraints.txt keeps that
    # release for it); the newest release does not install there.
    res = resolution.resolve("3.12", "macos-x86_64", roots=[Requirement("onnxruntime==1.32.0")], pinned=[])
    assert not res.ok
    assert any(p.startswith("onnxruntime (needed by launchbay)") for p in res.problems), res.problems


def test_a_pin_that_a_dependent_excludes_is_named() -> None:
    res = resolution.resolve("3.12", "linux-x86_64", roots=[Requirement("pyopenssl==26.4.0")],
                             pinned=[Requirement("cryptography==48.0.1")])
    assert any("cryptography==48.0.1 is pinned, but pyopenssl needs" in p for p in res.problems), res.problems


def test_markers_are_the_targets_not_this_machines() -> None:
    mac = resolution.environment("3.13", resolution.PLATFORMS["macos-arm64"])
    linux = resolution.environment("3.11", resolution.PLATFORMS["linux-aarch64"])
    nccl = Requirement('nvidia-nccl-cu12; platform_system == "Linux" and platform_machine != "aarch64"')
    assert resolution._applies(nccl, mac) is False and resolution._applies(nccl, linux) is False
    azure = Requirement('azure-functions==2.3.0; python_version >= "3.13"')
    assert resolution._applies(azure, mac) and not resolution._applies(azure, linux)
    # An extra's dependencies apply only when the extra is asked for (psycopg[binary]).
    binary = Requirement('psycopg-binary==3.3.9; implementation_name != "pypy" and extra == "binary"')
    assert resolution._applies(binary, mac, frozenset({"binary"}))
    assert not resolution._applies(binary, mac)
    meta = {"psycopg": {"version": "3.3.9", "requires_dist": [str(binary)]},
            "psycopg-binary": {"version": "3.3.9", "requires_dist": []}}
    both = resolution._closure([Requirement("psycopg[binary]")], meta, mac)
    assert set(both) == {"psycopg", "psycopg-binary"}
    assert set(resolution._closure([Requirement("psycopg")], meta, mac)) == {"psycopg"}
