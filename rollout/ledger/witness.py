"""The witness: each new head of a model's event chain, signed and kept outside the ledger's database.

The hash chain (`schema`) shows any change in the middle of the log, but someone who can write the
database can delete its newest events, or change one and recompute every digest after it, and
the chain still holds. So every launchbay process that appends an event also appends a *mark* to
`<state>/witness/<model>.jsonl` -- the event's id and digest, when, signed with the witness key
`<state>/keys/witness.pem` (EC P-256, made on first use, 0600), a key the database never holds.
`launchbay audit` checks every mark against the log: a witnessed event that is gone names a
removed tail, a witnessed event whose digest differs names a recomputed chain.

Who can still do what is said in the README (the witness needs its own file and key untouched:
keep `rollout.witness_dir` on another machine's disk to take that from someone who owns this one).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from launchbay.checks import ec
from launchbay.checks.approvals import key_id

log = logging.getLogger("launchbay.ledger")

KEY = "witness.pem"


@dataclass(frozen=True)
class Mark:
    """One witnessed head: event `event_id` of `model` had `digest` at `at`."""

    model: str
    event_id: int
    digest: str
    at: float
    key_id: str
    signature: str

    def signed_bytes(self) -> bytes:
        """What the signature covers."""
        return json.dumps([self.model, self.event_id, self.digest, repr(float(self.at))]).encode()


@dataclass(frozen=True)
class Marks:
    """A model's marks as read back: the good ones, and lines that could not be trusted."""

    marks: list[Mark]
    bad: list[str]
    """Why lines were not taken (unreadable, signed by an unknown key, a signature that fails)."""


class Witness:
    """Signs a model's new heads into a file of its own and reads them back."""

    def __init__(self, directory: Path, key: Path, trusted: list[Path] | None = None) -> None:
        """
        Args:
            directory: where the marks are kept (one file per model).
            key: this process's witness key (made on first use).
            trusted: public keys of other machines' witnesses writing the same directory.
        """
        self.directory = directory
        self.key = key
        self.trusted = trusted or []
        self._private: Any = None

    def _signer(self) -> Any:
        if self._private is None:
            if not self.key.exists():
                ec.generate(self.key, self.key.with_suffix(".pub"))
            self._private = ec.load_private(self.key)
        return self._private

    def path(self, model: str) -> Path:
        """The marks of `model`."""
        return self.directory / f"{model}.jsonl"

    def witness(self, model: str, event_id: int, digest: str, at: float) -> None:
        """Append a signed mark; a witness that cannot write says so in the log and does not
        undo the ledger write it follows (the audit then reports the event as not witnessed)."""
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec as curves

        try:
            private = self._signer()
            public = private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            unsigned = Mark(model, int(event_id), digest, at, key_id(public), "")
            signature = private.sign(unsigned.signed_bytes(), curves.ECDSA(hashes.SHA256()))
            mark = Mark(**{**asdict(unsigned), "signature": base64.b64encode(signature).decode()})
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path(model), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)  # one whole line per writer, however many write
                fh.write(json.dumps(asdict(mark)) + "\n")
        except (OSError, ValueError) as exc:
            log.warning("event #%s of %s could not be witnessed: %s", event_id, model, exc)

    def public_keys(self) -> dict[str, Any]:
        """The witness keys marks are trusted from, by key id: this one's and `trusted`."""
        from cryptography.hazmat.primitives import serialization

        found: dict[str, Any] = {}
        for pem_path in [self.key.with_suffix(".pub"), *self.trusted]:
            with contextlib.suppress(OSError, ValueError):
                pem = pem_path.read_bytes()
                found[key_id(pem)] = serialization.load_pem_public_key(pem)
        return found

    def read(self, model: str) -> Marks:
        """The model's marks whose signatures verify with a trusted witness key."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec as curves

        keys = self.public_keys()
        good: list[Mark] = []
        bad: list[str] = []
        try:
            lines = self.path(model).read_text().splitlines()
        except FileNotFoundError:
            return Marks([], [])
        for n, line in enumerate(lines, 1):
            try:
                mark = Mark(**json.loads(line))
            except (ValueError, TypeError):
                bad.append(f"line {n} is not a mark")
                continue
            public = keys.get(mark.key_id)
            if public is None:
                bad.append(f"line {n} (event #{mark.event_id}) is signed by an unknown key {mark.key_id}")
                continue
            try:
                signature = base64.b64decode(mark.signature)
                public.verify(signature, mark.signed_bytes(), curves.ECDSA(hashes.SHA256()))
            except (InvalidSignature, ValueError):
                bad.append(f"line {n} (event #{mark.event_id}): its signature does not verify (forged?)")
                continue
            good.append(mark)
        return Marks(good, bad)

    @property
    def active(self) -> bool:
        """True once this state directory has witnessed anything (its key exists)."""
        return self.key.exists()
