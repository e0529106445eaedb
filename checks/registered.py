"""The signature gate in front of every deployment: a registered version, downloaded and verified.

What the pipeline signed is what the registry holds; this gate downloads that copy and verifies it
against the deployment's trusted keys (never keys shipped with the artefact). The controller runs
it before a release gets any traffic, `launchbay verify` shows it to people, and serving runs it
again on the copy it is about to load.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from launchbay.checks import provenance
from launchbay.checks.keys import trusted_keys
from launchbay.checks.signature import VerifyResult, verify
from launchbay.checks.verdict import Verdict
from launchbay.config import LaunchbayConfig
from launchbay.home import Home
from launchbay.registry import MlflowRegistry, ModelRef, Registry


@dataclass(frozen=True)
class Origin:
    """Where a verified version came from, as its signed provenance states it."""

    git_commit: str | None
    data_digest: str
    training_run: str
    gates: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The form people read (`launchbay verify`) and the ledger records."""
        return {
            "git commit": self.git_commit,
            "data digest": self.data_digest,
            "training run": self.training_run,
            "gates": dict(self.gates),
        }


@dataclass(frozen=True)
class Verification:
    """The outcome of verifying one registered version."""

    model: str
    version: str
    result: VerifyResult
    origin: Origin | None = None
    """Read from the signed provenance, so only present when the signature verified."""

    @property
    def verdict(self) -> Verdict:
        """PASS only when a trusted key verified every file."""
        return self.result.verdict

    @property
    def message(self) -> str:
        """What was verified with which key, or what is wrong."""
        return self.result.message

    def to_dict(self) -> dict[str, Any]:
        """JSON form (`launchbay verify --json`, ledger evidence)."""
        doc: dict[str, Any] = {
            "model": self.model,
            "version": self.version,
            "verdict": self.verdict.value,
            "message": self.message,
            "key": self.result.key,
        }
        if self.origin is not None:
            doc["provenance"] = self.origin.to_dict()
        return doc


def verify_registered(
    cfg: LaunchbayConfig, home: Home, model_ref: str, registry: Registry | None = None
) -> Verification:
    """Download `MODEL@REF` from the registry and verify it against the trusted keys.

    Raises:
        UsageError: no such model version or alias.
    """
    reg = registry or MlflowRegistry(cfg, home)
    version = reg.resolve(ModelRef.parse(model_ref))
    with tempfile.TemporaryDirectory(prefix="launchbay-verify-") as tmp:
        model_dir = reg.download(version, Path(tmp) / "model")
        result = verify(model_dir, trusted_keys(cfg, home))
        origin = _origin(model_dir) if result.verdict.ok else None
    return Verification(version.model, version.version, result, origin)


def _origin(model_dir: Path) -> Origin:
    pred = provenance.read(model_dir)["predicate"]
    return Origin(
        git_commit=pred["source"]["git_commit"],
        data_digest=pred["data"]["digest"],
        training_run=pred["training_run"]["id"],
        gates=dict(pred["gates"]),
    )
