"""The model registry as the rollout sees it: who holds the `champion` alias.

Promotion moves `champion` to the candidate; a rollback moves it back to the version that serves
again. Each version also gets a `launchbay.rollout` tag saying how its release ended, so people
browsing MLflow see it without opening launchbay's ledger.
"""

from __future__ import annotations

from typing import Any

from launchbay.config import LaunchbayConfig
from launchbay.home import Home


class MlflowRegistry:
    """The MLflow registry configured for this project (connected on first use)."""

    def __init__(self, cfg: LaunchbayConfig, home: Home) -> None:
        self.cfg, self.home = cfg, home
        self._client: Any = None

    def _connect(self) -> Any:
        if self._client is None:
            from pipelines import tracking

            tracking.preflight(self.cfg, self.home)
            self._client, _ = tracking.connect(self.cfg, self.home)
        return self._client

    def champion(self, model: str) -> str | None:
        """The version holding `champion`, or None."""
        from pipelines import tracking

        v = tracking.alias_version(self._connect(), model, tracking.CHAMPION)
        return None if v is None else str(v.version)

    def set_champion(self, model: str, version: str) -> None:
        """Point `champion` at `version` (idempotent)."""
        from pipelines import tracking

        self._connect().set_registered_model_alias(model, tracking.CHAMPION, str(version))

    def tag(self, model: str, version: str, outcome: str) -> None:
        """Record how the version's release went (`launchbay.rollout` tag)."""
        self._connect().set_model_version_tag(model, str(version), "launchbay.rollout", outcome)
