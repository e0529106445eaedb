"""`launchbay audit MODEL`: is the event log what was written, and was every decision signed?

Two checks anybody with read access to the ledger's database can run, on any machine:

* the hash chain of the model's events (`SqlLedger.verify_chain`): a changed, removed or reordered
  event is named, with the first one that no longer follows;
* every approval and rejection: its signed statement verifies with the public key stored beside
  it, that key is the one the config lists for the signer, and the statement is about the release
  it moved.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from launchbay.checks import approvals
from launchbay.checks.approvals import SignedStatement
from launchbay.checks.verdict import Verdict
from launchbay.config import LaunchbayConfig
from launchbay.errors import ConfigError
from launchbay.home import Home
from launchbay.rollout.engine import freeze
from launchbay.rollout.engine.release import Event
from launchbay.rollout.ledger.store import LEDGER_ENV, ChainBreak, SqlLedger
from launchbay.rollout.ledger.witness import Mark, Marks

DECISIONS = {"approved": "approve", "rejected": "reject"}
_FREEZES = (freeze.FREEZE_ON, freeze.FREEZE_OFF)
"""Ledger actions that a person's signed decision made, and the decision each needs."""


@dataclass(frozen=True)
class SignatureCheck:
    """One recorded decision, checked."""

    event_id: int
    release_id: int | None
    """None: a signed statement about the model itself (an emergency freeze)."""
    actor: str
    action: str
    verdict: str
    message: str


@dataclass
class AuditReport:
    """What `launchbay audit` found."""

    model: str
    events: int = 0
    verified: int = 0
    chain_break: ChainBreak | None = None
    decisions: list[SignatureCheck] = field(default_factory=list)
    witnessed: int = 0
    """Events whose head was witnessed outside the database and still is what was witnessed."""
    witness_problems: list[str] = field(default_factory=list)
    """What the witness shows was removed or rewritten (and marks that cannot be trusted)."""
    unwitnessed: list[int] = field(default_factory=list)
    """Events no mark covers: written before witnessing began, by a process without this state
    directory's witness key, or by someone with only the database."""

    @property
    def ok(self) -> bool:
        """The chain holds, the witness agrees with it, and every decision's signature verifies."""
        return (
            self.chain_break is None
            and not self.witness_problems
            and all(d.verdict == Verdict.PASS.value for d in self.decisions)
        )

    @property
    def first_problem(self) -> str:
        """The first thing wrong, in words ("" when nothing is)."""
        if self.chain_break is not None:
            return f"event #{self.chain_break.event_id} {self.chain_break.problem}"
        if self.witness_problems:
            return self.witness_problems[0]
        for d in self.decisions:
            if d.verdict != Verdict.PASS.value:
                return f"event #{d.event_id} ({d.actor} {d.action} release #{d.release_id}): {d.message}"
        return ""

    def lines(self) -> list[str]:
        """The report for people."""
        out = []
        if self.chain_break is None:
            out.append(f"{self.model}: {self.events} events, hash chain intact")
        else:
            out.append(
                f"{self.model}: hash chain BROKEN at event #{self.chain_break.event_id} "
                f"(after {self.verified} verified events): {self.chain_break.problem}"
            )
        if self.witness_problems:
            out.append("  witness: " + "; ".join(self.witness_problems))
        elif self.witnessed:
            out.append(f"  witness: {self.witnessed} events as witnessed outside the database")
        if self.unwitnessed:
            ids = _ranges(self.unwitnessed)
            out.append(
                f"  {len(self.unwitnessed)} events not witnessed ({ids}): written before witnessing began, "
                "by a process without this state directory's witness key, or outside launchbay"
            )
        for d in self.decisions:
            about = f"release #{d.release_id}" if d.release_id is not None else "model"
            out.append(f"  #{d.event_id} {about} {d.action} by {d.actor}: {d.verdict} {d.message}")
        if not self.decisions:
            out.append("  no approvals or rejections recorded")
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "model": self.model,
            "ok": self.ok,
            "events": self.events,
            "verified": self.verified,
            "chain_break": asdict(self.chain_break) if self.chain_break else None,
            "decisions": [asdict(d) for d in self.decisions],
            "witnessed": self.witnessed,
            "witness_problems": self.witness_problems,
            "unwitnessed": self.unwitnessed,
            "first_problem": self.first_problem,
        }


def audit(cfg: LaunchbayConfig | None, home: Home, model: str) -> AuditReport:
    """Check the model's event log in the project's ledger (never creating one)."""
    report = AuditReport(model)
    url = cfg.rollout.ledger_url if cfg is not None else None
    if not (url or os.environ.get(LEDGER_ENV) or SqlLedger.default_path(home).exists()):
        return report
    ledger = SqlLedger.for_config(cfg, home)
    history = ledger.history(model=model)
    report.events = len(history)
    report.verified, report.chain_break = ledger.verify_chain(model)
    report.decisions = [_check(cfg, e) for e in history if e.action in DECISIONS or e.action in _FREEZES]
    if ledger.witness is not None:
        report.witnessed, report.witness_problems, report.unwitnessed = against_witness(
            history, ledger.witness.read(model), missing=ledger.witness.active and bool(history)
        )
    return report


def against_witness(history: list[Event], marks: Marks, missing: bool) -> tuple[int, list[str], list[int]]:
    """Compare the log with what was witnessed: (events as witnessed, problems, unwitnessed ids).

    A witnessed event that is gone names a removed tail (or a removed event); one whose digest
    differs names a chain rewritten from there -- both invisible to the hash chain alone.
    `missing`: this state directory has witnessed before, so an absent log is itself a problem.
    """
    by_id = {e.id: e for e in history}
    last = max(by_id, default=0)
    problems = list(marks.bad)
    if missing and not marks.marks and not marks.bad:
        problems.append("the witness log is gone although this state directory witnessed events")
    gone: list[Mark] = []
    good: set[int] = set()
    for m in sorted(marks.marks, key=lambda m: m.event_id):
        e = by_id.get(m.event_id)
        if e is None:
            gone.append(m)
        elif e.digest != m.digest:
            problems.append(
                f"event #{m.event_id} is not the one witnessed at {_at(m.at)}: its digest was "
                f"{m.digest[:12]}, is {str(e.digest)[:12]} -- it was changed and the chain recomputed "
                "from there (or removed and replaced)"
            )
        else:
            good.add(m.event_id)
    tail = [m for m in gone if m.event_id > last]
    if tail:
        problems.insert(
            0,
            f"the newest events were removed: {_ranges([m.event_id for m in tail])} "
            f"(witnessed up to {_at(tail[-1].at)}) are gone; the log now ends at #{last}",
        )
    if inside := [m.event_id for m in gone if m.event_id <= last]:
        problems.append(f"witnessed events are gone from the log: {_ranges(inside)}")
    return len(good), problems, [e.id for e in history if e.id not in good]


def _at(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _ranges(ids: list[int]) -> str:
    """`#3-#7, #9` for [3, 4, 5, 6, 7, 9]."""
    spans: list[list[int]] = []
    for i in sorted(ids):
        if spans and spans[-1][1] == i - 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    return ", ".join(f"#{a}" if a == b else f"#{a}-#{b}" for a, b in spans)


def _check(cfg: LaunchbayConfig | None, event: Event) -> SignatureCheck:
    def result(verdict: Verdict, message: str) -> SignatureCheck:
        return SignatureCheck(event.id, event.release_id, event.actor, event.action, verdict.value, message)

    if event.action in _FREEZES:
        return result(*freeze.check_signature(cfg, event))

    doc = event.evidence.get("approval")
    if not isinstance(doc, dict):
        return result(Verdict.FAIL, "no signed statement: nobody proved who decided")
    try:
        signed = SignedStatement.from_dict(doc)
    except (KeyError, TypeError) as exc:
        return result(Verdict.FAIL, f"the signed statement is malformed: {exc}")
    s = signed.statement
    if s.release_id != event.release_id or s.decision != DECISIONS[event.action]:
        return result(Verdict.FAIL, f"the statement is about release #{s.release_id} ({s.decision})")
    if (s.on_behalf_of or s.approver) != event.actor:
        return result(
            Verdict.FAIL, f"the event names {event.actor}, the statement {s.on_behalf_of or s.approver}"
        )
    trusted = None
    if cfg is not None:
        rules = cfg.rollout.approval
        keys = rules.workflows if s.on_behalf_of else rules.approvers
        if s.approver in keys:
            try:
                trusted = cfg.public_key(keys[s.approver])
            except ConfigError:
                trusted = None
    checked = approvals.verify(signed, trusted)
    if checked.verdict is Verdict.PASS and trusted is None:
        return result(Verdict.PASS, checked.message + " (no configured key to compare with)")
    return result(checked.verdict, checked.message)
