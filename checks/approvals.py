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
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from launchbay.checks.verdict import Verdict

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


@dataclass(frozen=True)
class SignedStatement:
    """A statement, its signature, and the public key that made it (for audits)."""

    statement: Statement
    signature: str
    """base64 of the DER ECDSA signature."""
    public_key: str
    """PEM of the signer's public key."""

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

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> SignedStatement:
        """Parse the stored form (KeyError/TypeError on a malformed one)."""
        return cls(Statement(**doc["statement"]), str(doc["signature"]), str(doc["public_key"]))


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


def default_key(name: str) -> Path:
    """Where `launchbay keys approver NAME` keeps NAME's private key: the person's own config
    directory ($XDG_CONFIG_HOME, else ~/.config), never the project's state directory."""
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "launchbay" / "approvers" / f"{name}.pem"


def generate(private: Path, public: Path, force: bool = False) -> None:
    """A new EC P-256 key pair: the private key readable by its owner only.

    Raises:
        FileExistsError: the private key exists and `force` is False.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    if private.exists() and not force:
        raise FileExistsError(str(private))
    private.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    private.chmod(stat.S_IRUSR | stat.S_IWUSR)
    public.parent.mkdir(parents=True, exist_ok=True)
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def load_private(source: str | Path) -> Any:
    """A private key from a path or from PEM text (`$LAUNCHBAY_APPROVER_KEY` may hold either).

    Raises:
        ValueError: not readable, or not a private key.
    """
    from cryptography.hazmat.primitives import serialization

    text = str(source)
    try:
        data = text.encode() if text.lstrip().startswith("-----BEGIN") else Path(text).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read the private key {text}: {exc.strerror}") from None
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"{text if len(text) < 200 else 'the given PEM'} is not a private key: {exc}"
        ) from None


def sign(statement: Statement, private_key: Any) -> SignedStatement:
    """Sign a statement with a loaded private key."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    signature = private_key.sign(statement.canonical(), ec.ECDSA(hashes.SHA256()))
    public = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return SignedStatement(statement, base64.b64encode(signature).decode(), public.decode())


def verify(signed: SignedStatement, trusted_pem: bytes | None = None) -> Check:
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
