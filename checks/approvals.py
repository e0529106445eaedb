"""Approvals people cannot forge: a statement signed with the approver's own key, checked against
the public key the project's config lists for that approver.

A statement binds the decision to exactly one release: its id, the model and version, the digest
of the model's signature bundle (so approving version 7 approves *these* files), the decision,
who signs, when, and why. The signature is ECDSA P-256 over the statement's canonical JSON -- the
same kind of key as the model-signing keys, made with `launchbay keys approver NAME`. The ledger
keeps the signed statement with the signer's public key, so `launchbay audit` can check every
approval again later, on any machine.

A workflow identity (a CI job guarded by a platform's reviewers, e.g. a GitHub environment) signs
on behalf of the reviewer the platform checked: `on_behalf_of` names them, and four eyes apply to
that person.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from launchbay.checks.ec import generate, load_private, write_public
from launchbay.checks.verdict import Verdict

__all__ = [
    "Check",
    "Decision",
    "FreezeStatement",
    "SignedFreeze",
    "SignedStatement",
    "Statement",
    "default_key",
    "generate",
    "key_id",
    "load_private",
    "sign",
    "sign_freeze",
    "verify",
    "write_public",
]

Decision = Literal["approve", "reject"]
KEY_ENV = "LAUNCHBAY_APPROVER_KEY"
"""An approver's private key: a path, or the PEM text itself (a CI secret)."""
MAX_AGE_S = 600.0
"""A statement older than this is not accepted (it was signed for another moment)."""


@dataclass(frozen=True)
class Statement:
    """What an approver signs."""

    release_id: int
    model: str
    version: str
    model_signature: str
    """sha256 of the model's signature bundle, as the registry recorded it at signing."""
    decision: Decision
    approver: str
    at: float
    reason: str = ""
    on_behalf_of: str | None = None

    def canonical(self) -> bytes:
        """The exact bytes that are signed."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode()


class _SignedForm:
    """What a signed statement of either kind shares: its key's name and its stored form."""

    statement: Any
    signature: str
    public_key: str

    @property
    def key_id(self) -> str:
        """`sha256:` and the first 16 hex digits of the public key's DER: how people name a key."""
        return key_id(self.public_key.encode())

    def to_dict(self) -> dict[str, Any]:
        """The form the ledger stores."""
        return {
            "statement": asdict(self.statement),
            "signature": self.signature,
            "public_key": self.public_key,
        }


@dataclass(frozen=True)
class SignedStatement(_SignedForm):
    """A statement, its signature, and the public key that made it (for audits)."""

    statement: Statement
    signature: str
    """base64 of the DER ECDSA signature."""
    public_key: str
    """PEM of the signer's public key."""

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> SignedStatement:
        """Parse the stored form (KeyError/TypeError on a malformed one)."""
        return cls(Statement(**doc["statement"]), str(doc["signature"]), str(doc["public_key"]))


@dataclass(frozen=True)
class FreezeStatement:
    """What a release manager signs to start (or end) an emergency freeze of a model."""

    model: str
    freeze: bool
    """True: frozen from `at` (until `until`, or until someone ends it); False: the freeze ends."""
    approver: str
    at: float
    reason: str
    until: float | None = None

    def canonical(self) -> bytes:
        """The exact bytes that are signed."""
        return json.dumps({"kind": "freeze", **asdict(self)}, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class SignedFreeze(_SignedForm):
    """A freeze statement, its signature and the public key that made it."""

    statement: FreezeStatement
    signature: str
    public_key: str

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> SignedFreeze:
        """Parse the stored form (KeyError/TypeError on a malformed one)."""
        return cls(FreezeStatement(**doc["statement"]), str(doc["signature"]), str(doc["public_key"]))


@dataclass(frozen=True)
class Check:
    """The outcome of checking a signed statement."""

    verdict: Verdict
    message: str


def key_id(public_pem: bytes) -> str:
    """A short, stable name of a public key."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_public_key(public_pem)
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()[:16]


def approvers_dir() -> Path:
    """Where `launchbay keys approver` keeps this person's approver keys: their own config
    directory ($XDG_CONFIG_HOME, else ~/.config), never the project's state directory."""
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "launchbay" / "approvers"


def default_key(name: str) -> Path:
    """Where `launchbay keys approver NAME` keeps NAME's private key (in `approvers_dir`)."""
    return approvers_dir() / f"{name}.pem"


def _signed(canonical: bytes, private_key: Any) -> tuple[str, str]:
    """(base64 signature, PEM public key) of `canonical` under `private_key`."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    signature = private_key.sign(canonical, ec.ECDSA(hashes.SHA256()))
    public = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(signature).decode(), public.decode()


def sign(statement: Statement, private_key: Any) -> SignedStatement:
    """Sign a statement with a loaded private key."""
    return SignedStatement(statement, *_signed(statement.canonical(), private_key))


def sign_freeze(statement: FreezeStatement, private_key: Any) -> SignedFreeze:
    """Sign a freeze statement with a loaded private key."""
    return SignedFreeze(statement, *_signed(statement.canonical(), private_key))


def verify(signed: SignedStatement | SignedFreeze, trusted_pem: bytes | None = None) -> Check:
    """Check the signature; with `trusted_pem`, also that it was made by that (configured) key."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        public = serialization.load_pem_public_key(signed.public_key.encode())
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(
            base64.b64decode(signed.signature), signed.statement.canonical(), ec.ECDSA(hashes.SHA256())
        )
    except (InvalidSignature, ValueError, TypeError, AssertionError):
        return Check(Verdict.FAIL, "the signature does not match the statement (changed after signing?)")
    if trusted_pem is not None and key_id(trusted_pem) != signed.key_id:
        return Check(
            Verdict.FAIL,
            f"signed with key {signed.key_id}, not with {signed.statement.approver}'s configured key "
            f"{key_id(trusted_pem)}",
        )
    return Check(Verdict.PASS, f"signed by {signed.statement.approver} with key {signed.key_id}")
