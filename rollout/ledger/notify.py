"""Notifications: webhooks told when a release needs a person or ends, delivered from the ledger.

The queue is the ledger itself. An event that moved a release into awaiting-approval, promoted,
rolled-back, failed or aborted is a notification for every webhook that asked for that kind,
until one delivery of it succeeded or its attempts are spent. Each attempt is a row of
`deliveries`, claimed before sending (a unique event/webhook/attempt), so a controller, a
`launchbay ui` and a CLI verb delivering at once never send the same attempt twice; its outcome
(HTTP status, or why not) is written when known. A restarted process picks up what was due.

A `Notifier` thread sends; the controller only writes the ledger, as it always did, so a
receiver that is down or hangs costs the controller nothing. Webhook URLs are secrets: read from
the environment or a file at send time, never logged, never in the ledger or an error message.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from launchbay.config import LaunchbayConfig
from launchbay.config.rollout import (
    MONITOR_EVENTS,
    NOTIFY_EVENTS,
    STALLED_ACTION,
    NotificationsSection,
    WebhookSection,
)
from launchbay.rollout.engine.release import Event, Release, UnknownRelease
from launchbay.rollout.ledger.schema import deliveries, events
from launchbay.rollout.ledger.store import SqlLedger, event_of

MAX_BACKOFF_S = 60.0
POLL_S = 0.5


@dataclass(frozen=True)
class Due:
    """One attempt to make: this event, to this webhook, attempt number `attempt`."""

    event: Event
    webhook: WebhookSection
    attempt: int


@dataclass(frozen=True)
class Outcome:
    """How one attempt went."""

    ok: bool
    status: int | None
    error: str | None
    seconds: float
    retry: bool


def kind_of(event: Event) -> str | None:
    """The notification an event is (its new phase), or None for events that are not one."""
    if event.action == STALLED_ACTION:
        return "stalled"
    if event.release_id is None and event.action in MONITOR_EVENTS:
        return event.action
    if event.phase_to in NOTIFY_EVENTS and event.phase_from != event.phase_to:
        return event.phase_to
    return None


def failing_checks(event: Event) -> list[dict[str, Any]]:
    """The checks of the analysis that decided the event that did not pass (a rollback's cause)."""
    analysis = event.evidence.get("analysis")
    if not isinstance(analysis, dict):
        return []
    return [
        {k: c.get(k) for k in ("check", "verdict", "observed", "expected", "detail")}
        for c in analysis.get("checks", [])
        if c.get("verdict") in ("FAIL", "ERROR")
    ]


def payload(event: Event, release: Release | None, page_url: str | None) -> dict[str, Any]:
    """The generic JSON document of a notification (documented in the README)."""
    kind = kind_of(event) or event.action
    about_model = event.release_id is None
    page = None
    if page_url:
        where = f"/models/{event.model}" if about_model else f"/releases/{event.release_id}"
        page = page_url.rstrip("/") + where
    return {
        "type": f"launchbay.{'model' if about_model else 'release'}.{kind}",
        "event": kind,
        "event_id": event.id,
        "at": datetime.fromtimestamp(event.at, UTC).isoformat(),
        "model": event.model,
        "release_id": event.release_id,
        "release": release.name
        if release
        else (None if about_model else f"{event.model}#{event.release_id}"),
        "version": release.version if release else None,
        "stable_version": release.stable_version if release else None,
        "author": release.author if release else None,
        "actor": event.actor,
        "action": event.action,
        "reason": event.reason,
        "failing_checks": failing_checks(event),
        "page": page,
    }


_HEADLINE = {
    "awaiting-approval": "waits for a release manager's approval",
    "promoted": "was promoted: it serves all traffic",
    "rolled-back": "was rolled back",
    "failed": "failed before getting traffic",
    "aborted": "was aborted",
    "stalled": "has not decided by its progress deadline",
    "drift-detected": "sees its live traffic drift from what it was trained on",
    "performance-dropped": "answers worse on labelled live traffic than it did offline",
    "retrain-started": "is being retrained on captured live traffic",
    "retrain-ended": "retrain ended",
}


def slack(doc: dict[str, Any]) -> dict[str, Any]:
    """The same notification as a Slack incoming-webhook message (text plus one mrkdwn block)."""
    who = doc["release"] or doc["model"]
    line = f"*{who}* {_HEADLINE.get(doc['event'], doc['event'])} (by {doc['actor']})"
    detail = [f"> {doc['reason']}"] if doc["reason"] else []
    detail += [
        f"• `{c['check']}` {c['verdict']}: observed {c['observed']}, expected {c['expected']}"
        for c in doc["failing_checks"]
    ]
    if doc["page"]:
        detail.append(f"<{doc['page']}|evidence>")
    text = "\n".join([line, *detail])
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}


def body(webhook: WebhookSection, doc: dict[str, Any]) -> dict[str, Any]:
    """What is POSTed to `webhook`: the generic document, or its Slack form."""
    return slack(doc) if webhook.format == "slack" else doc


def webhook_url(webhook: WebhookSection, base: Path) -> str:
    """The receiver's URL, read now (ValueError naming where it was looked for, never the URL)."""
    if webhook.url_env is not None:
        url = os.environ.get(webhook.url_env, "").strip()
        where = f"environment variable {webhook.url_env}"
    else:
        path = Path(webhook.url_file or "").expanduser()
        path = path if path.is_absolute() else base / path
        where = f"file {path}"
        try:
            url = path.read_text().strip()
        except OSError as exc:
            raise ValueError(f"webhook {webhook.name}: cannot read {where}: {exc.strerror}") from None
    if not url:
        raise ValueError(f"webhook {webhook.name}: {where} is empty or not set")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"webhook {webhook.name}: {where} does not hold an http(s) URL")
    return url


def send(webhook: WebhookSection, doc: dict[str, Any], base: Path, timeout: float) -> Outcome:
    """POST one notification; never raises. 2xx is delivered; a connection problem, a timeout,
    408, 429 and 5xx are retried; any other answer is final (the receiver refuses the message)."""
    started = time.monotonic()
    try:
        url = webhook_url(webhook, base)
    except ValueError as exc:
        return Outcome(False, None, str(exc), 0.0, retry=True)
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            res = client.post(url, json=body(webhook, doc), headers={"User-Agent": "launchbay"})
    except httpx.HTTPError as exc:
        # The exception's text can carry the URL: keep its type and the OS's words only.
        cause = exc.__cause__ or exc.__context__
        why = f"{type(exc).__name__}" + (f": {cause}" if cause else "")
        return Outcome(False, None, why, time.monotonic() - started, retry=True)
    took = time.monotonic() - started
    if 200 <= res.status_code < 300:
        return Outcome(True, res.status_code, None, took, retry=False)
    retry = res.status_code in (408, 429) or res.status_code >= 500
    text = res.text[:200].replace("\n", " ")
    return Outcome(False, res.status_code, f"HTTP {res.status_code}: {text}", took, retry=retry)


class Outbox:
    """The notifications due now, and the record of every attempt, in the ledger's database."""

    def __init__(
        self, ledger: SqlLedger, section: NotificationsSection, clock: Callable[[], float] = time.time
    ) -> None:
        self.ledger = ledger
        self.section = section
        self.clock = clock

    def backoff(self, attempts_made: int) -> float:
        """The wait after the `attempts_made`-th failed attempt."""
        return float(min(self.section.backoff * 2 ** (attempts_made - 1), MAX_BACKOFF_S))

    def due(self) -> list[Due]:
        """Attempts to make now, oldest event first."""
        if not self.section.webhooks:
            return []
        now = self.clock()
        q = (
            sa.select(events)
            .where(
                events.c.at >= now - self.section.max_age,
                sa.or_(
                    events.c.phase_to.in_(NOTIFY_EVENTS),
                    events.c.action.in_((STALLED_ACTION, *MONITOR_EVENTS)),
                ),
            )
            .order_by(events.c.id)
        )
        with self.ledger.engine.connect() as conn:
            rows = [
                r
                for r in conn.execute(q).mappings()
                if r["phase_from"] != r["phase_to"] or r["action"] in (STALLED_ACTION, *MONITOR_EVENTS)
            ]
            ids = [r["id"] for r in rows]
            tried: dict[tuple[int, str], list[Any]] = {}
            if ids:
                dq = (
                    sa.select(deliveries).where(deliveries.c.event_id.in_(ids)).order_by(deliveries.c.attempt)
                )
                for d in conn.execute(dq).mappings():
                    tried.setdefault((d["event_id"], d["webhook"]), []).append(d)
        out = []
        for row in rows:
            event = event_of(row)
            for w in self.section.webhooks:
                if kind_of(event) not in w.events:
                    continue
                made = tried.get((event.id, w.name), [])
                if self._settled(made, now):
                    continue
                out.append(Due(event, w, len(made) + 1))
        return out

    def _settled(self, made: list[Any], now: float) -> bool:
        """True when these attempts need no other now: one succeeded, they are spent, the last
        was refused for good, is still in flight, or its backoff has not passed."""
        if any(d["ok"] for d in made) or len(made) >= self.section.attempts:
            return True
        if not made:
            return False
        last = made[-1]
        if last["ok"] is None:  # in flight elsewhere (or its sender died): give it its timeout first
            return bool(now < last["at"] + 2 * self.section.timeout)
        if (last["error"] or "").startswith("final:"):
            return True
        return bool(now < last["at"] + (last["seconds"] or 0.0) + self.backoff(len(made)))

    def claim(self, due: Due) -> int | None:
        """Record the attempt as started; None when another process claimed it first."""
        try:
            with self.ledger.engine.begin() as conn:
                rid = conn.execute(
                    deliveries.insert().values(
                        event_id=due.event.id, webhook=due.webhook.name, attempt=due.attempt, at=self.clock()
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
        except sa.exc.IntegrityError:
            return None
        except sa.exc.OperationalError:
            return None  # SQLite busy: the next pass tries again
        return int(rid)

    def finish(self, delivery_id: int, outcome: Outcome) -> None:
        """Write how the attempt went (a refusal that is not worth retrying is marked final)."""
        error = outcome.error
        if error is not None and not outcome.retry:
            error = f"final: {error}"
        for _ in range(5):
            try:
                with self.ledger.engine.begin() as conn:
                    conn.execute(
                        deliveries.update()
                        .where(deliveries.c.id == delivery_id)
                        .values(ok=outcome.ok, status=outcome.status, error=error, seconds=outcome.seconds)
                    )
                return
            except sa.exc.OperationalError:
                time.sleep(0.05)

    def attempts(self, release_id: int | None = None) -> list[dict[str, Any]]:
        """Every recorded attempt (of one release's events), oldest first."""
        q = sa.select(deliveries, events.c.release_id, events.c.phase_to).join(
            events, deliveries.c.event_id == events.c.id
        )
        if release_id is not None:
            q = q.where(events.c.release_id == release_id)
        with self.ledger.engine.connect() as conn:
            rows = conn.execute(q.order_by(deliveries.c.id)).mappings()
            return [{**dict(r), "event": r["phase_to"]} for r in rows]


class Notifier:
    """Delivers what the outbox says is due, from a thread of its own (or one pass on demand)."""

    def __init__(self, outbox: Outbox, base: Path) -> None:
        self.outbox = outbox
        self.base = base
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one pass at a time in this process

    def deliver_due(self) -> int:
        """Make every attempt that is due now; the number made."""
        with self._lock:
            made = 0
            releases: dict[int | None, Release | None] = {None: None}  # None: about the model
            for due in self.outbox.due():
                delivery = self.outbox.claim(due)
                if delivery is None:
                    continue
                rid = due.event.release_id
                if rid is not None and rid not in releases:
                    try:
                        releases[rid] = self.outbox.ledger.get(rid)
                    except UnknownRelease:
                        releases[rid] = None
                doc = payload(due.event, releases[rid], self.outbox.section.page_url)
                self.outbox.finish(delivery, send(due.webhook, doc, self.base, self.outbox.section.timeout))
                made += 1
            return made

    def start(self) -> Notifier:
        """Deliver in the background until `stop`."""
        self._thread = threading.Thread(target=self._loop, name="launchbay-notifier", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                self.deliver_due()
            except Exception:  # a database hiccup must not end deliveries for the process's life
                continue

    def stop(self, flush: float = 0.0) -> None:
        """Stop the thread; with `flush`, first wait up to that long for what is due now to be sent
        (a `launchbay release` that just promoted says so before it exits)."""
        deadline = time.monotonic() + flush
        while time.monotonic() < deadline:
            # First attempts only: retries are left to a long-running notifier (a controller's).
            if not [d for d in self.outbox.due() if d.attempt == 1]:
                break
            if self._thread is None:
                self.deliver_due()
            else:
                time.sleep(0.1)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.outbox.section.timeout + 1)


def sample_event(model: str) -> Event:
    """A made-up awaiting-approval event, for `launchbay notify test`."""
    return Event(
        id=0,
        release_id=0,
        model=model,
        at=time.time(),
        actor="launchbay-controller",
        action="step",
        phase_from="canary",
        phase_to="awaiting-approval",
        reason="test notification from `launchbay notify test`: nothing is waiting",
        evidence={},
    )


def notifier(ledger: SqlLedger, cfg: LaunchbayConfig) -> Notifier | None:
    """The project's notifier, or None when `notifications.webhooks` names no receiver."""
    section = cfg.notifications
    if not section.webhooks:
        return None
    return Notifier(Outbox(ledger, section), cfg.base_dir)
