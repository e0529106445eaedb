"""Change freezes: the configured windows (`freeze:`) and emergency freezes on record.

Inside a freeze no release is started, no step gives the candidate more traffic and nothing is
promoted -- by a person or by the controller; a release under way holds where it is (still
watched: a failing candidate is rolled back), and rollback, reject and abort always work.

An emergency freeze is a release manager's signed statement (`launchbay freeze on --as NAME`),
kept in the ledger as an event about the model (no release), in its hash chain; `freeze off`
ends it the same way. Only the people `rollout.approval.approvers` lists may sign one, with the
key the config lists for them, and `launchbay audit` checks every such signature again.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import asdict, dataclass
from typing import Any

from launchbay.checks import approvals
from launchbay.checks.approvals import FreezeStatement, SignedFreeze
from launchbay.checks.verdict import Verdict
from launchbay.config import LaunchbayConfig
from launchbay.errors import ConfigError, Refused
from launchbay.identity import ran_by
from launchbay.rollout.engine.release import Event, Ledger

FREEZE_ON = "freeze-on"
FREEZE_OFF = "freeze-off"
FREEZE_REFUSED = "freeze-refused"
HELD = "frozen"
"""The ledger action of a release held at its step by a freeze."""
EMERGENCY = "emergency"


@dataclass(frozen=True)
class Frozen:
    """A freeze in force: which, why, since and until when, and who declared it (emergency)."""

    name: str
    reason: str
    since: float
    until: float | None
    """None: until someone ends it (`launchbay freeze off`)."""
    by: str | None = None

    def describe(self) -> str:
        """`the emergency freeze by alice (incident 42), until 2026-12-07 18:00 UTC`."""
        who = f" by {self.by}" if self.by else ""
        why = f" ({self.reason})" if self.reason else ""
        end = "until someone runs `launchbay freeze off`"
        if self.until is not None:
            end = f"until {_utc(self.until)}"
        kind = "the emergency freeze" if self.name == EMERGENCY else f"the freeze window {self.name!r}"
        return f"{kind}{who}{why}, {end}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (`status --json`, the page)."""
        return {**asdict(self), "describe": self.describe()}


def _utc(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def scheduled(cfg: LaunchbayConfig, now: float) -> Frozen | None:
    """The configured window `now` falls in (the one ending last when several do)."""
    at = dt.datetime.fromtimestamp(now, dt.UTC)
    found = []
    for window in cfg.freeze:
        occurrence = window.occurrence(at)
        if occurrence is not None:
            start, end = occurrence
            found.append(Frozen(window.name, window.reason, start.timestamp(), end.timestamp()))
    return max(found, key=lambda f: f.until or 0.0) if found else None


def emergency(ledger: Ledger, model: str, now: float) -> Frozen | None:
    """The emergency freeze on record, if it is in force at `now`."""
    notes = [e for e in ledger.notes(model) if e.action in (FREEZE_ON, FREEZE_OFF)]
    if not notes or notes[-1].action == FREEZE_OFF:
        return None
    last = notes[-1]
    until = last.evidence.get("until")
    if until is not None and now >= float(until):
        return None
    return Frozen(EMERGENCY, last.reason, last.at, None if until is None else float(until), last.actor)


def active(cfg: LaunchbayConfig, ledger: Ledger, model: str, now: float | None = None) -> Frozen | None:
    """The freeze in force now (an emergency one first), None when changes may go ahead."""
    now = time.time() if now is None else now
    return emergency(ledger, model, now) or scheduled(cfg, now)


def refuse_when_frozen(cfg: LaunchbayConfig, ledger: Ledger, model: str, doing: str) -> None:
    """Raise when a freeze is in force.

    Raises:
        Refused: `doing` refused, naming the freeze and until when; rollback still works.
    """
    frozen = active(cfg, ledger, model)
    if frozen is not None:
        raise Refused(f"{doing} refused: {model} is frozen by {frozen.describe()}; rollback still works")


def declare(
    cfg: LaunchbayConfig,
    ledger: Ledger,
    on: bool,
    name: str,
    key: str | None,
    reason: str,
    until: float | None = None,
) -> tuple[Event | None, Frozen | None]:
    """Start (`on`) or end an emergency freeze of the model as `name`, signed with their key.

    Returns the event recorded (None when nothing changed: ending a freeze that is not in force)
    and the emergency freeze in force afterwards.

    Raises:
        Refused: `name` is not a release manager of the model, or cannot sign as themselves
            (recorded, with who was at the keyboard).
    """
    model = cfg.model.name
    now = time.time()
    if not on and emergency(ledger, model, now) is None:
        return None, None
    doing = "freeze" if on else "ending the freeze"
    problem = _who(cfg, name)
    signed: SignedFreeze | None = None
    if problem is None:
        path = key or _env_key() or str(approvals.default_key(name))
        try:
            private = approvals.load_private(path)
        except ValueError as exc:
            problem = f"{name} cannot sign: {exc} (`launchbay keys approver {name}` makes a key)"
        else:
            statement = FreezeStatement(model, on, name, now, reason, until)
            signed = approvals.sign_freeze(statement, private)
            trusted = cfg.public_key(cfg.rollout.approval.approvers[name])
            checked = approvals.verify(signed, trusted)
            problem = None if checked.verdict is Verdict.PASS else checked.message
    if problem is not None or signed is None:
        evidence = {"claimed": name, "freeze": on, "ran_by": ran_by()}
        ledger.note(model, actor=name, action=FREEZE_REFUSED, reason=problem or "", evidence=evidence)
        raise Refused(f"{doing} refused: {problem}")
    evidence = {"freeze": signed.to_dict(), "until": until, "ran_by": ran_by()}
    action = FREEZE_ON if on else FREEZE_OFF
    event = ledger.note(model, actor=name, action=action, reason=reason, evidence=evidence)
    return event, emergency(ledger, model, time.time())


def _who(cfg: LaunchbayConfig, name: str) -> str | None:
    approvers = cfg.rollout.approval.approvers
    if name not in approvers:
        listed = ", ".join(approvers) or "none"
        return f"{name} is not a release manager of {cfg.model.name} (rollout.approval.approvers: {listed})"
    try:
        cfg.public_key(approvers[name])
    except ConfigError as exc:
        return f"{name}'s public key cannot be read: {exc.message}"
    return None


def _env_key() -> str | None:
    import os

    return os.environ.get(approvals.KEY_ENV)


def check_signature(cfg: LaunchbayConfig | None, event: Event) -> tuple[Verdict, str]:
    """An emergency freeze (or its end) on record, checked again: a valid signature of the
    statement it keeps, about this model and action, by the actor, with their configured key."""
    try:
        signed = SignedFreeze.from_dict(event.evidence["freeze"])
    except (KeyError, TypeError) as exc:
        return Verdict.FAIL, f"no well-formed signed freeze statement: {exc}"
    s = signed.statement
    if s.model != event.model or s.freeze != (event.action == FREEZE_ON) or s.approver != event.actor:
        return Verdict.FAIL, f"the statement is about {s.model} (freeze {s.freeze}) by {s.approver}"
    trusted = None
    if cfg is not None and s.approver in cfg.rollout.approval.approvers:
        try:
            trusted = cfg.public_key(cfg.rollout.approval.approvers[s.approver])
        except ConfigError:
            trusted = None
    checked = approvals.verify(signed, trusted)
    return checked.verdict, checked.message
