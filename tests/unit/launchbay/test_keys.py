"""Where keys come from: config, environment (CI secrets), or the state directory."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from launchbay.checks.keys import signing_key, trusted_keys
from launchbay.checks.signature import generate_keypair, sign, verify
from launchbay.config import load_config
from launchbay.home import Home


def test_defaults_are_the_local_key_pair(project: Callable[..., Path], lb_home: Path) -> None:
    cfg = load_config(project(rows=200))
    home = Home.resolve()
    assert signing_key(cfg, home) == lb_home.resolve() / "keys" / "signing-key.pem"
    assert trusted_keys(cfg, home) == [lb_home.resolve() / "keys" / "signing-key.pub"]


def test_pem_text_in_the_environment_becomes_a_private_file(
    project: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private, public = generate_keypair(tmp_path / "ci")
    monkeypatch.setenv("LAUNCHBAY_SIGNING_KEY", private.read_text())
    monkeypatch.setenv("LAUNCHBAY_TRUSTED_KEYS", f"{public}:{tmp_path / 'other.pub'}")
    cfg = load_config(project(rows=200))
    key = signing_key(cfg, Home.resolve())
    assert key != private and stat.S_IMODE(key.stat().st_mode) == 0o600
    model = tmp_path / "m"
    model.mkdir()
    (model / "w.bin").write_bytes(b"weights")
    sign(model, key)
    assert verify(model, trusted_keys(cfg, Home.resolve())).key == str(public)


def test_config_paths_win_and_are_relative_to_the_config(project: Callable[..., Path]) -> None:
    path = project(
        rows=200, overrides={"signing.private_key": "k/ci.pem", "signing.trusted_keys": ["k/a.pub"]}
    )
    cfg = load_config(path)
    assert signing_key(cfg, Home.resolve()) == path.parent / "k" / "ci.pem"
    assert trusted_keys(cfg, Home.resolve()) == [path.parent / "k" / "a.pub"]
