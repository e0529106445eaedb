"""Verify a model-signing signature with `cryptography` alone: the check of the lean runtimes.

`model_signing` takes 1.35 s to import on the machines launchbay runs on -- more than the whole
cold start a scale-to-zero server, a function or a device can afford. The bundle it writes in
key mode is small and fully specified, so the lean runtimes (the HTTP runtime, the function
handlers, the edge bundle) verify it here, with the same rules:

* the bundle is a Sigstore bundle whose DSSE envelope carries an in-toto Statement
  (`application/vnd.in-toto+json`); its one signature is ECDSA over the DSSE pre-authentication
  encoding (PAE) of the payload, with the hash the key's curve implies (P-256: SHA-256);
* the key hint in the bundle, when present, is the sha256 of the trusted key's PEM;
* the subject's digest is the sha256 over the listed files' digests, in their listed order;
* every file of the directory -- except the signed `ignore_paths` -- is listed with its sha256,
  and every listed file exists; a symbolic link fails (model-signing's default).

Anything else the format allows (certificates, Sigstore's transparency log, sharded or
BLAKE3 manifests) is refused with a message naming it: launchbay signs with keys and files only.
`tests/unit/checks/test_lean_verify.py` holds this verdict equal to model-signing's own on good,
tampered, extended, shortened and foreign-key directories.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from launchbay.checks.signature import SIGNATURE_FILE, VerifyResult, usable_keys
from launchbay.checks.verdict import Verdict

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"


class _Refused(Exception):
    """The bundle or the directory does not verify (the message says why)."""


def verify(model_dir: Path, trusted_keys: Sequence[Path]) -> VerifyResult:
    """Verify `model_dir/model.sig` against each trusted key; PASS if one of them verifies it.

    The same verdicts as `launchbay.checks.signature.verify`: FAIL names a missing signature, a
    changed/added/removed file or an untrusted key; ERROR when there is no key to verify with.
    """
    sig = model_dir / SIGNATURE_FILE
    keys = usable_keys(model_dir, trusted_keys)
    if isinstance(keys, VerifyResult):
        return keys
    try:
        bundle = json.loads(sig.read_bytes())
        _well_formed(bundle)
        envelope = bundle["dsseEnvelope"]
        payload = base64.b64decode(envelope["payload"], validate=True)
        signature = base64.b64decode(envelope["signatures"][0]["sig"], validate=True)
        hint = str(bundle["verificationMaterial"]["publicKey"].get("hint") or "")
    except _Refused as exc:
        return VerifyResult(Verdict.FAIL, f"{sig} is not a valid signature: {exc}")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        return VerifyResult(Verdict.FAIL, f"{sig} is not a valid signature: {type(exc).__name__}: {exc}")
    for key in keys:
        if not _signed_by(key, hint, payload, signature):
            continue
        try:
            _check_files(model_dir, payload)
        except _Refused as exc:
            return VerifyResult(Verdict.FAIL, str(exc))
        return VerifyResult(Verdict.PASS, f"signature verified with {key}", str(key))
    return VerifyResult(
        Verdict.FAIL, "signature was not made by any trusted key (" + ", ".join(map(str, keys)) + ")"
    )


def _fields(where: str, obj: Any, required: set[str], optional: frozenset[str] = frozenset()) -> None:
    if not isinstance(obj, dict):
        raise _Refused(f"{where} is not an object")
    if missing := sorted(required - set(obj)):
        raise _Refused(f"{where} lacks {', '.join(missing)}")
    if unknown := sorted(set(obj) - required - optional):
        raise _Refused(f"{where} has unknown field(s) {', '.join(unknown)}")


def _well_formed(bundle: Any) -> None:
    """The bundle's shape, as strictly as model-signing's protobuf parser reads it: a key-signed
    v0.3 bundle with one DSSE signature (a renamed or unknown field is refused, not skipped)."""
    _fields("the bundle", bundle, {"mediaType", "verificationMaterial", "dsseEnvelope"})
    if bundle["mediaType"] != BUNDLE_MEDIA_TYPE:
        raise _Refused(f"media type {bundle['mediaType']!r}, expected {BUNDLE_MEDIA_TYPE}")
    material = bundle["verificationMaterial"]
    _fields("verificationMaterial", material, {"publicKey"}, frozenset({"tlogEntries"}))
    if material.get("tlogEntries"):
        raise _Refused("transparency log entries are not supported by the lean verifier (key mode only)")
    _fields("verificationMaterial.publicKey", material["publicKey"], set(), frozenset({"hint"}))
    envelope = bundle["dsseEnvelope"]
    _fields("dsseEnvelope", envelope, {"payload", "payloadType", "signatures"})
    if envelope["payloadType"] != PAYLOAD_TYPE:
        raise _Refused(f"payload type {envelope['payloadType']!r}, expected {PAYLOAD_TYPE}")
    signatures = envelope["signatures"]
    if not isinstance(signatures, list) or len(signatures) != 1:
        raise _Refused("expected exactly one signature in the envelope")
    _fields("the signature", signatures[0], {"sig"}, frozenset({"keyid"}))


def pae(payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding of an in-toto payload (what the signature covers)."""
    return b"DSSEv1 %d %s %d %s" % (len(PAYLOAD_TYPE), PAYLOAD_TYPE.encode(), len(payload), payload)


def _signed_by(key: Path, hint: str, payload: bytes, signature: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = key.read_bytes()
    try:
        public = serialization.load_pem_public_key(pem)
    except ValueError:
        return False
    if not isinstance(public, ec.EllipticCurvePublicKey):
        return False
    canonical = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if hint and hint != hashlib.sha256(canonical).hexdigest():
        return False
    digest = {256: hashes.SHA256(), 384: hashes.SHA384(), 521: hashes.SHA512()}.get(public.curve.key_size)
    if digest is None:
        return False
    try:
        public.verify(signature, pae(payload), ec.ECDSA(digest))
    except InvalidSignature:
        return False
    return True


def _check_files(model_dir: Path, payload: bytes) -> None:
    """The signed statement's files against the directory's (raises _Refused naming the files)."""
    try:
        statement: dict[str, Any] = json.loads(payload)
        subjects = statement["subject"]
        predicate = statement["predicate"]
        serialization = predicate["serialization"]
        resources = predicate["resources"]
    except (ValueError, KeyError, TypeError) as exc:
        raise _Refused(f"the signed statement is malformed: {type(exc).__name__}: {exc}") from None
    if statement.get("predicateType") != PREDICATE_TYPE:
        raise _Refused(f"predicate type {statement.get('predicateType')!r}, expected {PREDICATE_TYPE}")
    if serialization.get("method") != "files" or serialization.get("hash_type") != "sha256":
        raise _Refused(
            f"serialization {serialization.get('method')!r}/{serialization.get('hash_type')!r} is not "
            "supported by the lean verifier (launchbay signs files with sha256)"
        )
    if len(subjects) != 1:
        raise _Refused(f"expected one subject, got {len(subjects)}")
    root = hashlib.sha256()
    expected: dict[str, str] = {}
    for r in resources:
        if r.get("algorithm") != "sha256":
            raise _Refused(f"resource {r.get('name')!r}: algorithm {r.get('algorithm')!r} is not sha256")
        root.update(bytes.fromhex(r["digest"]))
        expected[str(r["name"])] = str(r["digest"])
    if root.hexdigest() != subjects[0].get("digest", {}).get("sha256"):
        raise _Refused("the signed manifest is inconsistent: its files do not hash to its subject")
    ignored = [Path(p) for p in serialization.get("ignore_paths") or []]
    actual = _hash_files(model_dir, ignored, allow_symlinks=bool(serialization.get("allow_symlinks")))
    parts = []
    if changed := sorted(n for n in set(actual) & set(expected) if actual[n] != expected[n]):
        parts.append("changed: " + ", ".join(changed))
    if added := sorted(set(actual) - set(expected)):
        parts.append("added: " + ", ".join(added))
    if removed := sorted(set(expected) - set(actual)):
        parts.append("removed: " + ", ".join(removed))
    if parts:
        raise _Refused("model files differ from what was signed: " + "; ".join(parts))


def _hash_files(model_dir: Path, ignored: list[Path], allow_symlinks: bool) -> dict[str, str]:
    out: dict[str, str] = {}
    for path in sorted(model_dir.rglob("*")):
        rel = path.relative_to(model_dir)
        if any(rel == i or i in rel.parents for i in ignored):
            continue
        if path.is_symlink() and not allow_symlinks:
            raise _Refused(f"{rel} is a symbolic link: signed models hold files only")
        if path.is_file():
            h = hashlib.sha256()
            with path.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            out[rel.as_posix()] = h.hexdigest()
    return out
