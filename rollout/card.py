"""`launchbay card`: a version's signed model card, checked, with what happened to it since.

The card the pipeline signed (`launchbay.checks.card`) is taken from the registry only when the
version's signature verifies against the trusted keys and the card's sha256 is the one its signed
provenance records. After it come the sections nobody could sign at training time: the version's
releases from the ledger (each step's evidence, who approved with which key, how it ended) and the
signature check just made.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from launchbay.checks.card import digest
from launchbay.checks.registered import verified_card
from launchbay.config import LaunchbayConfig
from launchbay.errors import PipelineFailed, UsageError
from launchbay.home import Home
from launchbay.registry import Registry
from launchbay.rollout.engine.release import Event, Release
from launchbay.rollout.status import ledger_if_any


@dataclass(frozen=True)
class Card:
    """A composed card: the text, and the facts `--json` reports."""

    text: str
    model: str
    version: str
    signed_sha256: str
    key: str | None
    releases: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form (`launchbay card --json`)."""
        return {
            "model": self.model,
            "version": self.version,
            "signed_card_sha256": self.signed_sha256,
            "verified_with": self.key,
            "releases": self.releases,
        }


def compose(cfg: LaunchbayConfig, home: Home, model_ref: str, registry: Registry | None = None) -> Card:
    """The card of `MODEL@REF`: signed part, checked, then its rollout and the check.

    Raises:
        PipelineFailed: the version does not verify (signature, or a card unlike the signed one).
        UsageError: no such version, or it was signed before launchbay wrote model cards.
    """
    checked, signed = verified_card(cfg, home, model_ref, registry)
    if not checked.verdict.ok:
        raise PipelineFailed(f"{model_ref}: no card is given for an unverified version: {checked.message}")
    if signed is None:
        raise UsageError(
            f"{model_ref} (version {checked.version}) was signed before launchbay wrote model cards: "
            "train it again (`launchbay run`) to have one"
        )
    mine = _releases(cfg, home, checked.version)
    lines = [signed.rstrip(), "", "## Rollout", ""]
    if not mine:
        lines += ["Not released yet.", ""]
    for release, events in mine:
        lines += _release_lines(release, events)
    lines += [
        "## Signature check",
        "",
        f"- {checked.message} (checked {_when(dt.datetime.now(dt.UTC).timestamp())})",
        f"- the signed card above: sha256 `{digest(signed)}`, as `provenance.json` records",
        "- the rollout above is from launchbay's ledger, after signing: `launchbay audit "
        f"{checked.model}` checks its hash chain and every signed decision",
        "",
    ]
    text = "\n".join(lines)
    return Card(text, checked.model, checked.version, digest(signed), checked.result.key, len(mine))


def _releases(cfg: LaunchbayConfig, home: Home, version: str) -> list[tuple[Release, list[Event]]]:
    ledger = ledger_if_any(cfg, home)
    if ledger is None:
        return []
    found = [r for r in reversed(ledger.releases(cfg.model.name)) if r.version == version]
    return [(r, ledger.history(release_id=r.id)) for r in found]


def _release_lines(r: Release, events: list[Event]) -> list[str]:
    against = f" against stable v{r.stable_version}" if r.stable_version else " (first version)"
    out = [f"### {r.name}: {r.phase.value}", ""]
    out += [f"Released by {r.author}{against}, {_when(r.created_at)}.", ""]
    out += ["| when | who | what | why |", "|---|---|---|---|"]
    for e in events:
        if e.action in ("analysis", "measurements"):
            continue  # the verdicts that moved it are in the steps; every measurement is in the ledger
        reason = e.reason.replace("|", "/").replace("\n", " ")[:160]
        out.append(f"| {_when(e.at)} | {e.actor} | {e.action} | {reason} |")
    analyses = [e for e in events if e.action == "analysis"]
    if analyses:
        last = analyses[-1].evidence
        checks = last.get("checks") or []
        out += ["", f"Last analysis ({len(analyses)} in all): {last.get('verdict', '?')}", ""]
        out += [
            f"- {c.get('check', '?')}: {c.get('verdict', '?')}, observed {c.get('observed')}, "
            f"expected {c.get('expected')}"
            for c in checks
        ]
    out.append("")
    return out


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
