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

from launchbay.checks import card, provenance
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
    model_card: str | None = None
    """sha256 of the signed model card (None: signed before launchbay wrote cards)."""

    def to_dict(self) -> dict[str, Any]:
        """The form people read (`launchbay verify`) and the ledger records."""
        return {
            "git commit": self.git_commit,
            "data digest": self.data_digest,
            "training run": self.training_run,
            "gates": dict(self.gates),
            "model card": f"sha256:{self.model_card}" if self.model_card else "none (signed before cards)",
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
    return verified_card(cfg, home, model_ref, registry)[0]


def verified_card(
    cfg: LaunchbayConfig, home: Home, model_ref: str, registry: Registry | None = None
) -> tuple[Verification, str | None]:
    """`verify_registered`, and the version's signed model card when it verified (None: it did
    not, or it was signed before launchbay wrote cards).

    Raises:
        UsageError: no such model version or alias.
    """
    reg = registry or MlflowRegistry(cfg, home)
    version = reg.resolve(ModelRef.parse(model_ref))
    text = None
    with tempfile.TemporaryDirectory(prefix="launchbay-verify-") as tmp:
        model_dir = reg.download(version, Path(tmp) / "model")
        result = verify(model_dir, trusted_keys(cfg, home))
        origin = _origin(model_dir) if result.verdict.ok else None
        if origin is not None and (wrong := _card_problem(model_dir, origin)) is not None:
            result, origin = VerifyResult(Verdict.FAIL, wrong, result.key), None
        if origin is not None and origin.model_card is not None:
            text = (model_dir / card.CARD_FILE).read_text()
    return Verification(version.model, version.version, result, origin), text


def _card_problem(model_dir: Path, origin: Origin) -> str | None:
    """What is wrong with the model card against the signed provenance (None: nothing)."""
    if origin.model_card is None:
        return None
    path = model_dir / card.CARD_FILE
    if not path.is_file():
        return f"the signed provenance names a model card ({card.CARD_FILE}) the version does not have"
    if card.digest(path.read_text()) != origin.model_card:
        return f"{card.CARD_FILE} differs from the card the signed provenance records"
    return None


def _origin(model_dir: Path) -> Origin:
    pred = provenance.read(model_dir)["predicate"]
    return Origin(
        git_commit=pred["source"]["git_commit"],
        data_digest=pred["data"]["digest"],
        training_run=pred["training_run"]["id"],
        gates=dict(pred["gates"]),
        model_card=(pred.get("model_card") or {}).get("sha256"),
    )
