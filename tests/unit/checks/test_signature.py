"""Signing and verification of a model directory: every kind of tampering is refused and named."""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from launchbay.checks.signature import (
    SIGNATURE_FILE,
    SigningError,
    generate_keypair,
    sign,
    tree_digest,
    verify,
)
from launchbay.checks.verdict import Verdict


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return generate_keypair(tmp_path / "keys")


@pytest.fixture
def model(tmp_path: Path, keys: tuple[Path, Path]) -> Path:
    d = tmp_path / "model"
    (d / "sub").mkdir(parents=True)
    (d / "model.skops").write_bytes(bytes(range(256)) * 40)
    (d / "MLmodel").write_text("flavors: {}\n")
    (d / "sub" / "serving.json").write_text("{}\n")
    sign(d, keys[0])
    return d


def test_private_key_is_readable_by_its_owner_only(keys: tuple[Path, Path]) -> None:
    private, public = keys
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----")


def test_existing_keys_are_not_overwritten_by_accident(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    before = keys[0].read_bytes()
    with pytest.raises(FileExistsError):
        generate_keypair(keys[0].parent)
    assert keys[0].read_bytes() == before
    generate_keypair(keys[0].parent, force=True)
    assert keys[0].read_bytes() != before


def test_signed_model_verifies_with_the_trusted_key(model: Path, keys: tuple[Path, Path]) -> None:
    result = verify(model, [keys[1]])
    assert result.verdict is Verdict.PASS and result.key == str(keys[1])


def test_one_flipped_byte_is_refused_naming_the_file(model: Path, keys: tuple[Path, Path]) -> None:
    data = bytearray((model / "model.skops").read_bytes())
    data[1234] ^= 0x01
    (model / "model.skops").write_bytes(bytes(data))
    result = verify(model, [keys[1]])
    assert result.verdict is Verdict.FAIL
    assert result.message == "model files differ from what was signed: changed: model.skops"


def test_added_and_removed_files_are_refused(model: Path, keys: tuple[Path, Path]) -> None:
    (model / "backdoor.py").write_text("print('hi')")
    assert verify(model, [keys[1]]).message.endswith("added: backdoor.py")
    (model / "backdoor.py").unlink()
    (model / "sub" / "serving.json").unlink()
    assert verify(model, [keys[1]]).message.endswith("removed: sub/serving.json")


def test_untrusted_key_missing_signature_and_no_keys(
    model: Path, tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    _, other = generate_keypair(tmp_path / "other")
    wrong = verify(model, [other])
    assert wrong.verdict is Verdict.FAIL and "not made by any trusted key" in wrong.message
    assert verify(model, [other, keys[1]]).verdict is Verdict.PASS  # any one trusted key suffices
    assert verify(model, [tmp_path / "absent.pub"]).verdict is Verdict.ERROR
    (model / SIGNATURE_FILE).unlink()
    assert verify(model, [keys[1]]).message.endswith("is not signed: model.sig is missing")


def test_corrupt_signature_file_is_refused(model: Path, keys: tuple[Path, Path]) -> None:
    (model / SIGNATURE_FILE).write_text("{not a bundle")
    result = verify(model, [keys[1]])
    assert result.verdict is Verdict.FAIL


def test_signing_without_a_key_says_how_to_get_one(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    with pytest.raises(SigningError, match="launchbay keys init"):
        sign(tmp_path / "m", tmp_path / "nope.pem")


def test_published_model_signing_cli_verifies_launchbay_signatures(
    model: Path, keys: tuple[Path, Path]
) -> None:
    cli = [
        sys.executable,
        "-m",
        "model_signing",
        "verify",
        "key",
        "--signature",
        str(model / SIGNATURE_FILE),
        "--public_key",
        str(keys[1]),
        str(model),
    ]
    ok = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    (model / "MLmodel").write_text("flavors: {tampered: true}\n")
    bad = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0


def test_tree_digest_changes_with_content_and_ignores_the_signature(model: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(model, copy)
    assert tree_digest(copy) == tree_digest(model)
    (copy / SIGNATURE_FILE).write_text("different")
    assert tree_digest(copy) == tree_digest(model)
    (copy / "MLmodel").write_text("changed")
    assert tree_digest(copy) != tree_digest(model)
