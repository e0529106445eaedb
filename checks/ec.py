"""EC P-256 key pairs, the one kind of key launchbay makes: for signing models and for approvers.

The private key is written readable by its owner only, from the moment it exists (created with
mode 0600, never chmod-ed after the fact); the public key is PEM beside wherever it is wanted.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any


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
    write_public(key, public)


def write_public(private_key: Any, public: Path) -> None:
    """Write the public half of a loaded private key (PEM) to `public`."""
    from cryptography.hazmat.primitives import serialization

    public.parent.mkdir(parents=True, exist_ok=True)
    public.write_bytes(
        private_key.public_key().public_bytes(
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
