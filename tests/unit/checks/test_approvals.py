"""Signed statements: what is signed, what verifies, and where keys live."""

from __future__ import annotations

import dataclasses
import stat
from pathlib import Path

import pytest

from launchbay.checks import approvals
from launchbay.checks.approvals import Statement
from launchbay.checks.verdict import Verdict

STATEMENT = Statement(7, "fraud-detector", "3", "ab" * 32, "approve", "alice", 1_800_000_000.0, "looks good")


def test_keys_are_private_and_live_in_the_persons_own_config_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    private = approvals.default_key("alice")
    assert private == tmp_path / "cfg" / "launchbay" / "approvers" / "alice.pem"
    approvals.generate(private, tmp_path / "alice.pub")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        approvals.generate(private, tmp_path / "alice.pub")


def test_a_signature_verifies_with_its_key_and_fails_for_any_change_or_another_key(tmp_path: Path) -> None:
    approvals.generate(tmp_path / "a.pem", tmp_path / "a.pub")
    approvals.generate(tmp_path / "b.pem", tmp_path / "b.pub")
    signed = approvals.sign(STATEMENT, approvals.load_private(tmp_path / "a.pem"))
    assert approvals.verify(signed, (tmp_path / "a.pub").read_bytes()).verdict is Verdict.PASS
    assert approvals.SignedStatement.from_dict(signed.to_dict()) == signed
    wrong_key = approvals.verify(signed, (tmp_path / "b.pub").read_bytes())
    assert wrong_key.verdict is Verdict.FAIL and "not with alice's configured key" in wrong_key.message
    for change in ({"release_id": 8}, {"version": "4"}, {"decision": "reject"}, {"at": 1.0}):
        edited = dataclasses.replace(signed, statement=dataclasses.replace(STATEMENT, **change))  # type: ignore[arg-type]
        assert approvals.verify(edited).verdict is Verdict.FAIL, change


def test_a_private_key_comes_from_a_path_or_pem_text_and_anything_else_is_named(tmp_path: Path) -> None:
    approvals.generate(tmp_path / "a.pem", tmp_path / "a.pub")
    pem = (tmp_path / "a.pem").read_text()
    assert approvals.load_private(pem).public_key() is not None
    with pytest.raises(ValueError, match="cannot read the private key"):
        approvals.load_private(tmp_path / "missing.pem")
    with pytest.raises(ValueError, match="is not a private key"):
        approvals.load_private(tmp_path / "a.pub")
