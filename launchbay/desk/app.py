"""`launchbay ui`: the release managers' page, served by launchbay itself (Starlette + uvicorn).

Server-rendered HTML: the releases, one release's timelines, analyses, gate reports, signature
and provenance, notifications and event log, and the approve/reject panel. Nothing is fetched
from the internet; the page polls its own live part every couple of seconds.

Who may use it: whoever holds the URL's token. It is printed once when the page starts (like a
notebook server's), exchanged for an HttpOnly, SameSite=Strict cookie on first use, and asked
of every request, so another user of the machine, or a web page open in the same browser,
cannot read the evidence or press the button. Requests must name this server as their Host
(no DNS rebinding), and a decision must also carry the token in its form (no cross-site POST).
Decisions are signed with the key of the person who started the page, never a key the browser
sends.
"""

from __future__ import annotations

import hmac
import json
import time
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from launchbay.checks.approvals import Decision
from launchbay.desk import charts
from launchbay.desk.evidence import Evidence, summaries
from launchbay.desk.signing import Signer, decide, offer
from launchbay.desk.timeline import RangeSource
from launchbay.errors import LaunchbayError
from launchbay.rollout.engine.decisions import pending
from launchbay.rollout.engine.release import LedgerUnavailable, Release, UnknownRelease
from launchbay.rollout.wiring import Wired

COOKIE = "launchbay_ui"
POLL_S = 1.5


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


class Desk:
    """The page's state: the rollout parts, the signer, the token and the templates."""

    def __init__(
        self, ctx: Wired, signer: Signer, token: str, hosts: set[str] | None, source: RangeSource | None
    ) -> None:
        self.ctx = ctx
        self.signer = signer
        self.token = token
        self.hosts = hosts
        self.evidence = Evidence(ctx, source)
        self.env = Environment(
            loader=PackageLoader("launchbay.desk", "templates"), autoescape=select_autoescape(default=True)
        )
        self.env.globals.update(
            when=_when, svg=charts.svg, poll_s=POLL_S, signer=signer, model=ctx.cfg.model.name
        )

    def render(
        self, template: str, status: int = 200, headers: dict[str, str] | None = None, **values: Any
    ) -> HTMLResponse:
        """A template as an HTML response."""
        html = self.env.get_template(template).render(csrf=self.token, **values)
        return HTMLResponse(html, status_code=status, headers=headers)

    # -- who may ask -----------------------------------------------------------------------

    def _token_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given, self.token)

    def gate(self, request: Request) -> Response | None:
        """None when the request may proceed; else the answer refusing it."""
        if self.hosts is not None and request.headers.get("host", "") not in self.hosts:
            return Response("unknown Host: open the address `launchbay ui` printed\n", status_code=421)
        if self._token_ok(request.cookies.get(COOKIE)):
            return None
        if self._token_ok(request.query_params.get("token")):
            rest = {k: v for k, v in request.query_params.items() if k != "token"}
            target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
            res = RedirectResponse(target, status_code=303)
            res.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
            return res
        return Response(
            "this page needs the token in the address `launchbay ui` printed (…/?token=…)\n",
            status_code=401,
            media_type="text/plain; charset=utf-8",  # the ellipsis is not Latin-1: say so
        )

    # -- pages -----------------------------------------------------------------------------

    def index(self, request: Request) -> Response:
        refused = self.gate(request)
        if refused is not None:
            return refused
        webhooks = ", ".join(f"{w.name} ({w.format})" for w in self.ctx.cfg.notifications.webhooks)
        return self.render("index.html", rows=summaries(self.ctx), webhooks=webhooks, frozen=self._frozen())

    def table(self, request: Request) -> Response:
        refused = self.gate(request)
        return refused or self.render("_releases.html", rows=summaries(self.ctx), frozen=self._frozen())

    def _frozen(self) -> str | None:
        """The change freeze in force, in words (None: none)."""
        from launchbay.rollout.engine import freeze

        found = freeze.active(self.ctx.cfg, self.ctx.ledger, self.ctx.model)
        return found.describe() if found is not None else None

    def _page(self, request: Request) -> tuple[Any, Response | None]:
        refused = self.gate(request)
        if refused is not None:
            return None, refused
        release = self._release(request)
        if release is None:
            return None, self.render("index.html", status=404, rows=summaries(self.ctx), webhooks="")
        return self.evidence.page(release), None

    def release(self, request: Request) -> Response:
        page, refused = self._page(request)
        if refused is not None:
            return refused
        choice = offer(self.ctx, page.release, self.signer)
        return self.render(
            "release.html", page=page, offer=choice, message=request.query_params.get("said"),
            ok=request.query_params.get("ok") == "1",
        )  # fmt: skip

    def live(self, request: Request) -> Response:
        page, refused = self._page(request)
        if refused is not None:
            return refused
        return self.render("_live.html", page=page, headers={"X-Phase": page.release.phase.value})

    def release_json(self, request: Request) -> Response:
        page, refused = self._page(request)
        if refused is not None:
            return refused
        doc = {
            **page.doc,
            "events": [e.to_dict() for e in page.events],
            "verification": page.verification,
            "reports": page.reports,
            "charts": [
                {"key": c.key, "title": c.title, "unit": c.unit, "source": c.source, "note": c.note,
                 "lines": [{"label": ln.label, "points": ln.points} for ln in c.lines]}
                for c in page.charts
            ],
            "deliveries": page.deliveries,
            "offer": offer(self.ctx, page.release, self.signer).to_dict(),
            "took_ms": round(page.took_ms, 1),
        }  # fmt: skip
        return JSONResponse(json.loads(json.dumps(doc, default=str)))

    async def decision(self, request: Request) -> Response:
        refused = self.gate(request)
        if refused is not None:
            return refused
        origin = request.headers.get("origin")
        if origin is not None and origin.split("://", 1)[-1] != request.headers.get("host"):
            return Response("a decision must come from this page\n", status_code=403)
        form = await request.form()
        if not self._token_ok(str(form.get("csrf", ""))):
            return Response(
                "a decision must come from this page (its form token is missing)\n", status_code=403
            )
        given = str(form.get("decision", ""))
        decision: Decision
        if given == "approve":
            decision = "approve"
        elif given == "reject":
            decision = "reject"
        else:
            return Response(f"decision: expected approve or reject, got {given!r}\n", status_code=422)
        reason = str(form.get("reason", ""))[:500]
        release = self._release(request)
        if release is None:
            return Response("no such release\n", status_code=404)
        return await run_in_threadpool(self._decide, release, decision, reason)

    def _release(self, request: Request) -> Release | None:
        """The release the path names, or None when there is none or the id cannot be one (not a
        number, out of range)."""
        text = str(request.path_params["rid"])
        if not text.isdigit() or len(text) > 9:
            return None
        try:
            return self.ctx.ledger.get(int(text))
        except UnknownRelease:
            return None

    def _decide(self, release: Release, decision: Decision, reason: str) -> Response:
        try:
            pending(self.ctx, str(release.id))
            done = decide(self.ctx, release, self.signer, decision, reason)
        except LaunchbayError as exc:  # refused by a rule (and recorded), or no longer waiting
            page = self.evidence.page(self.ctx.ledger.get(release.id))
            choice = offer(self.ctx, page.release, self.signer)
            return self.render(
                "release.html", status=403, page=page, offer=choice, message=exc.message, ok=False
            )
        said = f"{decision}d by {self.signer.name}: {done.name} is {done.phase.value}"
        return RedirectResponse(
            f"/releases/{done.id}?{urlencode({'said': said, 'ok': '1'})}", status_code=303
        )

    def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True, "at": time.time()})


async def _ledger_away(request: Request, exc: Exception) -> Response:
    """The ledger's database cannot be reached (a shared PostgreSQL down): say so, not a 500 trace."""
    first = str(exc).splitlines()[0][:300]
    return Response(f"the ledger cannot be read right now: {first}\n", status_code=503)


def app(desk: Desk) -> Starlette:
    """The Starlette application of a desk."""
    import sqlalchemy as sa

    return Starlette(
        exception_handlers={sa.exc.OperationalError: _ledger_away, LedgerUnavailable: _ledger_away},
        routes=[
            Route("/", desk.index),
            Route("/healthz", desk.health),
            Route("/releases/table", desk.table),
            Route("/releases/{rid}", desk.release),
            Route("/releases/{rid}/live", desk.live),
            Route("/api/releases/{rid}", desk.release_json),
            Route("/releases/{rid}/decision", desk.decision, methods=["POST"]),
        ],
    )
