"""Model signatures (OpenSSF model-signing, elliptic-curve keys, offline) and their verification.

A model directory is signed as a whole: every file's sha256 goes into an in-toto statement inside
a Sigstore bundle (`model.sig`), signed with the private key. `model.sig` itself is the only path
left out, so the signature can travel inside the directory it signs; anything else added, removed
or changed -- model weights, `provenance.json`, `serving.json` -- fails verification, and the
error names the file.

Trusted public keys always come from the deployment's configuration, never from the artefact:
a tamperer who can rewrite the model can also rewrite a key shipped next to it.
"""

from __future__ import annotations

import hashlib
import json
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from launchbay.checks import ec
from launchbay.checks.verdict import Verdict

SIGNATURE_FILE = "model.sig"
PRIVATE_KEY = "signing-key.pem"
PUBLIC_KEY = "signing-key.pub"


class SigningError(Exception):
    """A model could not be signed (no key, unreadable key, ...)."""


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of verifying a model directory against trusted keys."""

    verdict: Verdict
    message: str
    key: str | None = None
    """The trusted key that verified the signature (on PASS)."""


def generate_keypair(directory: Path, force: bool = False) -> tuple[Path, Path]:
    """Create the model-signing key pair in `directory`: the private key readable by its owner only.

    Raises:
        FileExistsError: keys already exist and `force` is False.
    """
    private, public = directory / PRIVATE_KEY, directory / PUBLIC_KEY
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    ec.generate(private, public, force=force)
    public.chmod(stat.S_IRUSR | stat.S_IWUSR)  # in the private state directory; share a copy
    return private, public


def sign(model_dir: Path, private_key: Path) -> Path:
    """Sign every file of `model_dir` (except the signature itself); return the signature's path."""
    import model_signing

    if not private_key.exists():
        raise SigningError(
            f"signing key {private_key} not found: run `launchbay keys init` or set LAUNCHBAY_SIGNING_KEY"
        )
    sig = model_dir / SIGNATURE_FILE
    hashing = model_signing.hashing.Config().set_ignored_paths(paths=[SIGNATURE_FILE])
    try:
        (
            model_signing.signing.Config()
            .set_hashing_config(hashing)
            .use_elliptic_key_signer(private_key=private_key)
            .sign(model_dir, sig)
        )
    except ValueError as exc:  # e.g. not an EC private key
        raise SigningError(f"cannot sign with {private_key}: {exc}") from None
    return sig


def usable_keys(model_dir: Path, trusted_keys: Sequence[Path]) -> list[Path] | VerifyResult:
    """The trusted keys that exist, or the verdict when there is nothing to verify (no such
    directory, no signature, no key): what every verifier checks before any cryptography."""
    if not model_dir.is_dir():
        return VerifyResult(Verdict.FAIL, f"model directory {model_dir} does not exist")
    if not (model_dir / SIGNATURE_FILE).exists():
        return VerifyResult(Verdict.FAIL, f"{model_dir} is not signed: {SIGNATURE_FILE} is missing")
    keys = [k for k in trusted_keys if k.exists()]
    if not keys:
        listed = ", ".join(map(str, trusted_keys)) or "none configured"
        return VerifyResult(Verdict.ERROR, f"no trusted public key to verify with ({listed})")
    return keys


def verify(model_dir: Path, trusted_keys: Sequence[Path]) -> VerifyResult:
    """Verify `model_dir/model.sig` against each trusted key; PASS if one of them verifies it.

    FAIL names what is wrong: a missing signature, a changed/added/removed file, or a signature
    made by a key that is not trusted. ERROR when there is nothing to verify with.
    """
    import model_signing

    sig = model_dir / SIGNATURE_FILE
    keys = usable_keys(model_dir, trusted_keys)
    if isinstance(keys, VerifyResult):
        return keys
    mismatch = None
    for key in keys:
        try:
            model_signing.verifying.Config().use_elliptic_key_verifier(public_key=key).verify(model_dir, sig)
        except ValueError as exc:
            text = str(exc)
            if "Signature mismatch" in text:
                # The signature is authentic for this key, but the files differ from what it signed.
                mismatch = f"model files differ from what was signed: {_describe_mismatch(text)}"
            continue
        except Exception as exc:  # a corrupt bundle raises parser errors of several kinds
            return VerifyResult(Verdict.FAIL, f"{sig} is not a valid signature: {type(exc).__name__}: {exc}")
        return VerifyResult(Verdict.PASS, f"signature verified with {key}", str(key))
    if mismatch:
        return VerifyResult(Verdict.FAIL, mismatch)
    return VerifyResult(
        Verdict.FAIL, "signature was not made by any trusted key (" + ", ".join(map(str, keys)) + ")"
    )


def _describe_mismatch(text: str) -> str:
    """model-signing's mismatch message (with raw digests) reduced to changed/added/removed files."""
    parts = []
    changed = re.findall(r"Hash mismatch for \\?'([^'\\]+)\\?'", text)
    if changed:
        parts.append("changed: " + ", ".join(changed))
    for kind, label in (("Extra files found", "added"), ("Missing files", "removed")):
        m = re.search(kind + r" in model [^:]*: ([^\]\"]+)", text)
        if m:
            parts.append(f"{label}: {m.group(1).strip()}")
    return "; ".join(parts) or text


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tree_digest(model_dir: Path, exclude: Sequence[str] = (SIGNATURE_FILE,)) -> str:
    """sha256 over the sorted (path, sha256) list of a directory's files: the model's identity."""
    entries = {
        str(p.relative_to(model_dir)): file_sha256(p)
        for p in sorted(model_dir.rglob("*"))
        if p.is_file() and str(p.relative_to(model_dir)) not in exclude
    }
    return hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()
