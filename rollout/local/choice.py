"""Which version answers a request at the local gateway: a tester's pin, a sticky user, or the weights.

* A pin (`routing.pin_header`: `candidate`, `stable` or a version number) names the version; the
  request is counted apart (role `pinned`), never retried on another version and never mirrored.
  A pin to a version that is not routed now is the client's mistake (409, naming what is).
* Sticky users keep the version first given to them for as long as the release (the pair of
  stable and candidate) lasts; a new release draws them afresh, a rollback or promotion moves
  them to whatever still serves. By cookie: the gateway sets `v<version>.c<candidate>` and reads
  it back (stateless: a gateway restart keeps every user). By a hash of a header (a user id): a
  bounded table of first draws, and a draw that is a function of the hash and the weight, so a
  user forgotten (table full, gateway restarted) who was on the candidate is drawn onto it again.
* Everything else is drawn by weight, as before.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Literal

from launchbay.rollout.targets.base import Backend, Routes

PINNED = "pinned"
"""The metrics role of pinned requests (the analysis reads role `primary` only)."""
BASELINE = "baseline"
"""The metrics role of requests the baseline server answered (stable's version, a fresh server)."""
CANDIDATE_WORDS = frozenset({"candidate", "canary"})
_COOKIE_VALUE = re.compile(r"^v([A-Za-z0-9_.-]+?)\.c([A-Za-z0-9_.-]+)$")


@dataclass(frozen=True)
class Routing:
    """The gateway's share of `rollout.routing` (passed to its worker as JSON)."""

    pin_header: str | None = "X-Launchbay-Pin"
    sticky: Literal["cookie", "header"] | None = None
    sticky_header: str | None = None
    sticky_cookie: str = "launchbay-version"

    def to_json(self) -> str:
        """The form the supervisor hands its worker."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Routing:
        """Parse `to_json`'s form (ValueError/TypeError on a malformed one)."""
        return cls(**json.loads(text)) if text else cls()


@dataclass(frozen=True)
class Choice:
    """The answer: a backend and the role it is counted under, or the client's mistake."""

    backend: Backend | None
    role: str = "primary"
    cookie: str | None = None
    """A sticky cookie value to set on the response (None: leave the client's as it is)."""
    refusal: str | None = None
    """Why the request is refused (409): a pin to a version that is not routed now."""


def cookie_value(version: str, candidate: str) -> str:
    """The sticky cookie of a user given `version` during the release of `candidate`."""
    return f"v{version}.c{candidate}"


def parse_cookie(value: str) -> tuple[str, str] | None:
    """(version, candidate) of a sticky cookie, None when it is not one of launchbay's."""
    m = _COOKIE_VALUE.match(value.strip())
    return (m.group(1), m.group(2)) if m else None


def bucket(key: str) -> float:
    """Where a user's key falls in [0, 100): the same key always falls in the same place."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


class Chooser:
    """Chooses a backend per request (one per gateway worker).

    Args:
        routing: pin header and stickiness.
        capacity: users remembered by a header-keyed stickiness (oldest forgotten first).
    """

    def __init__(self, routing: Routing | None = None, capacity: int = 100_000) -> None:
        self.routing = routing or Routing()
        self.capacity = capacity
        self._first: OrderedDict[bytes, tuple[tuple[str, str], str]] = OrderedDict()
        """sha256(user key) -> ((stable, candidate) of the release, the version first given)."""

    def choose(
        self, routes: Routes, headers: Mapping[str, str], cookies: Mapping[str, str], draw: float
    ) -> Choice:
        """The backend for one request under `routes`; `draw` is uniform in [0, 100)."""
        stable, canary = routes.stable, routes.canary
        assert stable is not None
        pin_header = self.routing.pin_header
        if pin_header is not None and (pin := headers.get(pin_header)) is not None:
            return self._pinned(routes, pin.strip())
        serving_canary = canary is not None and routes.canary_weight > 0
        if not serving_canary or canary is None:
            return Choice(stable)
        release = (stable.version, canary.version)
        w = routes.canary_weight
        # The baseline's share is drawn like the candidate's, for requests not already kept on a
        # version: a sticky user drawn into it is kept on stable's version (the same model) after.
        to_baseline = routes.baseline is not None and w <= draw < 2 * w
        weighted = canary if draw < w else stable
        if self.routing.sticky == "cookie":
            said = parse_cookie(cookies.get(self.routing.sticky_cookie, ""))
            if said is not None and said[1] == canary.version and said[0] in release:
                return Choice(canary if said[0] == canary.version else stable)
            if to_baseline and routes.baseline is not None:
                return Choice(routes.baseline, BASELINE, cookie=cookie_value(stable.version, canary.version))
            return Choice(weighted, cookie=cookie_value(weighted.version, canary.version))
        if self.routing.sticky == "header" and self.routing.sticky_header is not None:
            user = headers.get(self.routing.sticky_header)
            if user:
                return Choice(self._first_given(user, release, routes))
        if to_baseline and routes.baseline is not None:
            return Choice(routes.baseline, BASELINE)
        return Choice(weighted)

    def _first_given(self, user: str, release: tuple[str, str], routes: Routes) -> Backend:
        """The version `user` was first given in this release (drawn by the hash of their key the
        first time; never the baseline: a user identified by a header stays on one version)."""
        assert routes.stable is not None and routes.canary is not None
        key = hashlib.sha256(user.encode()).digest()
        known = self._first.get(key)
        if known is not None and known[0] == release:
            self._first.move_to_end(key)
            return routes.canary if known[1] == routes.canary.version else routes.stable
        given = routes.canary if bucket(user) < routes.canary_weight else routes.stable
        self._first[key] = (release, given.version)
        self._first.move_to_end(key)
        while len(self._first) > self.capacity:
            self._first.popitem(last=False)
        return given

    @staticmethod
    def _pinned(routes: Routes, pin: str) -> Choice:
        stable, canary = routes.stable, routes.canary
        assert stable is not None
        word = pin.lower()
        if word in CANDIDATE_WORDS:
            if canary is None:
                refusal = f"no candidate is deployed (stable is version {stable.version})"
                return Choice(None, PINNED, refusal=refusal)
            return Choice(canary, PINNED)
        if word == "stable" or pin.removeprefix("v") == stable.version:
            return Choice(stable, PINNED)
        if canary is not None and pin.removeprefix("v") == canary.version:
            return Choice(canary, PINNED)
        routed = f"stable {stable.version}" + (f", candidate {canary.version}" if canary else "")
        return Choice(None, PINNED, refusal=f"version {pin[:40]!r} is not deployed ({routed})")
