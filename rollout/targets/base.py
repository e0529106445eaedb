"""The Target seam: put a release's serving units up and down, and route traffic between versions.

One small interface, implementations side by side: `local` (BentoML processes behind launchbay's
gateway), `kubernetes` (Deployment/Service/HPA per version, Gateway API HTTPRoute weights and
RequestMirror), `knative` (one Service, revision traffic percentages; no mirroring). The seam's
value types (`Backend`, `Routes`) live here, with the seam; `factory.make_target` picks an
implementation by name.

What only some targets can do is a second small protocol, `Processes`, that a target hands out
(or not) through `Target.processes()`: callers ask once and get a typed answer, never probe.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

from launchbay.checks.verdict import Verdict

VERSION = re.compile(r"^[1-9][0-9]{0,17}$")
"""What a model version is in the registry (MLflow numbers them 1, 2, 3, ...): nothing else can
name a version in routes, server records or the resources named after them."""


def check_version(version: str) -> str:
    """`version` if it is a registry version; ValueError otherwise (a path, a label, anything else)."""
    if not isinstance(version, str) or not VERSION.match(version):
        raise ValueError(f"{version!r} is not a model version (versions are numbers: 1, 2, 3, ...)")
    return version


@dataclass(frozen=True)
class Backend:
    """Where one model version answers (a URL on this machine, a Service in a cluster)."""

    version: str
    url: str

    def __post_init__(self) -> None:
        check_version(self.version)


@dataclass(frozen=True)
class Routes:
    """Where traffic goes. `canary_weight` is a percentage of real traffic; `mirror` copies the rest."""

    stable: Backend | None = None
    canary: Backend | None = None
    canary_weight: int = 0
    mirror: bool = False
    baseline: Backend | None = None
    """A fresh server of stable's version taking the candidate's share too (stable keeps the rest)."""

    def __post_init__(self) -> None:
        if not 0 <= self.canary_weight <= 100:
            raise ValueError(f"canary_weight must be within 0..100, got {self.canary_weight}")
        if (self.canary_weight or self.mirror) and self.canary is None:
            raise ValueError("a canary weight or mirroring needs a canary backend")
        if self.baseline is not None and not 0 < 2 * self.canary_weight <= 100:
            raise ValueError(f"a baseline takes the canary's share: weight 1..50, got {self.canary_weight}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (`baseline` only when there is one)."""
        out = asdict(self)
        if self.baseline is None:
            del out["baseline"]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Routes:
        """Parse the JSON form (raises ValueError/TypeError/KeyError on a malformed one)."""

        def backend(b: Any) -> Backend | None:
            return None if b is None else Backend(version=str(b["version"]), url=str(b["url"]))

        return cls(
            stable=backend(d.get("stable")),
            canary=backend(d.get("canary")),
            canary_weight=int(d.get("canary_weight", 0)),
            mirror=bool(d.get("mirror", False)),
            baseline=backend(d.get("baseline")),
        )


class StaleRoutes(Exception):
    """The target already follows a newer ledger generation than the routes it was sent: whoever
    sent them read the ledger before someone changed it, and must derive the routes again."""


Notify = Callable[[str, str], None]
"""How a target tells its caller what happened on its own, e.g. ("gateway-restarted", why)."""


class Processes(Protocol):
    """Optional capability: the serving units are processes launchbay runs on this machine."""

    @property
    def url(self) -> str:
        """The one address clients use, whatever version answers (started if it is not running)."""
        ...

    def log_tail(self, version: str, lines: int = 15) -> str:
        """The end of a version's server log (why it died)."""
        ...

    def deployed(self) -> list[str]:
        """Every version with a server of launchbay's here (running or not)."""
        ...

    def down(self) -> list[str]:
        """Stop every process of the model; return what was stopped."""
        ...


@runtime_checkable
class AnswerSources(Protocol):
    """Optional capability: the base URLs of a version's running servers, each serving its answer
    log (`GET /launchbay/answers`): the cluster's shadow join and the production monitor read them."""

    def endpoints(self, version: str) -> list[str]:
        """Where each running server of `version` answers (none: it does not run now)."""
        ...


class Target(Protocol):
    """Where model versions run and how traffic reaches them."""

    def deploy(self, model: str, version: str) -> None:
        """Start the serving units of a (verified) version; return once they were asked to start."""
        ...

    def backend(self, version: str) -> Backend:
        """Where traffic for `version` is sent (a URL on this machine, a Service in a cluster)."""
        ...

    def started(self, version: str) -> bool:
        """True once `deploy` started the version's units, until `retire` (even if they died since)."""
        ...

    def retire(self, version: str, drain_timeout: float = 10.0) -> None:
        """Stop a version's serving units after draining its in-flight requests. Idempotent."""
        ...

    def set_routes(self, routes: Routes, generation: int | None = None) -> None:
        """Send traffic as `routes` says (stable, canary weight, mirroring). Idempotent.

        `generation` is the ledger generation the routes were derived from: a target that keeps
        it refuses routes older than those it has (`StaleRoutes`), so a writer that paused
        between reading the ledger and writing the routes cannot undo a newer decision.
        """
        ...

    def routes(self) -> Routes:
        """The routes in force, read back from the target (not from launchbay's memory)."""
        ...

    def health(self, version: str) -> Verdict:
        """PASS: answers its readiness probe; FAIL: it died; INCONCLUSIVE: still starting."""
        ...

    def processes(self) -> Processes | None:
        """The local processes behind this target, or None where the platform runs them."""
        ...


LATENCY_BUCKETS = (  # seconds; the analysis counts requests against these bounds
    # (here, not in the gateway: the controller needs them without the gateway's aiohttp)
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.2,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,  # up to the backend timeout: evidence records a hung backend's real wait, not "2.5 s"
    60.0,
)
