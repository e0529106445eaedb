"""The lean verifier (cryptography only) gives model-signing's verdict on every kind of directory."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from launchbay.checks import lean_verify
from launchbay.checks.signature import SIGNATURE_FILE, generate_keypair, sign, verify
from launchbay.checks.verdict import Verdict


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """The signing pair and a second, untrusted public key."""
    root = tmp_path_factory.mktemp("keys")
    private, public = generate_keypair(root / "a")
    _, other = generate_keypair(root / "b")
    return private, public, other


def _model(root: Path, private: Path) -> Path:
    d = root / "model"
    (d / "onnx").mkdir(parents=True)
    (d / "model.skops").write_bytes(bytes(range(256)) * 40)
    (d / "onnx" / "model.onnx").write_bytes(b"\x08\x07" * 500)
    (d / "serving.json").write_text("{}\n")
    sign(d, private)
    return d


def _flip(d: Path) -> None:
    p = d / "onnx" / "model.onnx"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))


def _add(d: Path) -> None:
    (d / "onnx" / "extra.bin").write_bytes(b"x")


def _remove(d: Path) -> None:
    (d / "serving.json").unlink()


def _link(d: Path) -> None:
    (d / "serving.json").unlink()
    (d / "serving.json").symlink_to(d / "model.skops")


def _forge_payload(d: Path) -> None:
    """Rewrite the signed statement to list a changed file (the signature then covers nothing)."""
    bundle = json.loads((d / SIGNATURE_FILE).read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["predicate"]["resources"][0]["digest"] = "00" * 32
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    (d / SIGNATURE_FILE).write_text(json.dumps(bundle))


def _garble(d: Path) -> None:
    (d / SIGNATURE_FILE).write_text('{"dsseEnvelope": {"payload": "!!"}}')


def _unsign(d: Path) -> None:
    (d / SIGNATURE_FILE).unlink()


TAMPERING: dict[str, Callable[[Path], None]] = {
    "flipped byte": _flip,
    "added file": _add,
    "removed file": _remove,
    "symlink": _link,
    "forged statement": _forge_payload,
    "garbled bundle": _garble,
    "no signature": _unsign,
}


Keys = tuple[Path, Path, Path]


def test_a_signed_directory_verifies_with_the_trusted_key(tmp_path: Path, keys: Keys) -> None:
    d = _model(tmp_path, keys[0])
    result = lean_verify.verify(d, [keys[2], keys[1]])
    assert result.verdict is Verdict.PASS and result.key == str(keys[1])


@pytest.mark.parametrize("kind", sorted(TAMPERING))
def test_every_tampering_is_refused_as_model_signing_refuses_it(
    tmp_path: Path, keys: tuple[Path, Path, Path], kind: str
) -> None:
    d = _model(tmp_path, keys[0])
    TAMPERING[kind](d)
    lean, full = lean_verify.verify(d, [keys[1]]), verify(d, [keys[1]])
    assert lean.verdict is Verdict.FAIL, lean.message
    assert full.verdict is Verdict.FAIL, full.message


def test_the_refusal_names_the_file(tmp_path: Path, keys: tuple[Path, Path, Path]) -> None:
    d = _model(tmp_path, keys[0])
    _flip(d)
    _add(d)
    _remove(d)
    message = lean_verify.verify(d, [keys[1]]).message
    assert "changed: onnx/model.onnx" in message
    assert "added: onnx/extra.bin" in message
    assert "removed: serving.json" in message


def test_a_signature_by_an_untrusted_key_is_refused(tmp_path: Path, keys: tuple[Path, Path, Path]) -> None:
    d = _model(tmp_path, keys[0])
    result = lean_verify.verify(d, [keys[2]])
    assert result.verdict is Verdict.FAIL and "not made by any trusted key" in result.message
    assert verify(d, [keys[2]]).verdict is Verdict.FAIL


def test_no_key_to_verify_with_is_an_error_not_a_pass(tmp_path: Path, keys: tuple[Path, Path, Path]) -> None:
    d = _model(tmp_path, keys[0])
    assert lean_verify.verify(d, [tmp_path / "missing.pub"]).verdict is Verdict.ERROR
    assert lean_verify.verify(d, []).verdict is Verdict.ERROR


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    position=st.integers(min_value=0, max_value=10_239),
    bit=st.integers(min_value=0, max_value=7),
    target=st.sampled_from(["model.skops", "serving.json", SIGNATURE_FILE]),
)
def test_any_flipped_bit_anywhere_gets_the_same_verdict_from_both(
    tmp_path_factory: pytest.TempPathFactory,
    keys: tuple[Path, Path, Path],
    position: int,
    bit: int,
    target: str,
) -> None:
    d = _model(tmp_path_factory.mktemp("m"), keys[0])
    p = d / target
    data = bytearray(p.read_bytes())
    data[position % len(data)] ^= 1 << bit
    p.write_bytes(bytes(data))
    # A flip inside the bundle's JSON may leave it meaning the same (e.g. in whitespace): both
    # verifiers must still agree.
    assert lean_verify.verify(d, [keys[1]]).verdict is verify(d, [keys[1]]).verdict


def test_the_lean_verifier_does_not_import_model_signing(tmp_path: Path, keys: Keys) -> None:
    import subprocess

    d = _model(tmp_path, keys[0])
    code = (
        "import sys; from pathlib import Path; from launchbay.checks import lean_verify;"
        f"r = lean_verify.verify(Path({str(d)!r}), [Path({str(keys[1])!r})]);"
        "assert r.verdict.value == 'PASS', r.message;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('model_signing', 'sigstore')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
