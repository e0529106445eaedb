"""A retrain in a cluster: the window goes to the shared store, and a Workflow from the model's
WorkflowTemplate trains on it -- the same gates, release, approval and promotion as any run.

The Workflow overrides only the template's `data` and `reference` parameters (the window and its
features, as URLs the steps read with their own credentials) and the `author` (launchbay-monitor);
its approval step waits for a release manager like every other. The controller's service account
may create and read Workflows in the Argo namespace (`launchbay render` grants it with the model's
RBAC when `monitor.retrain` is on).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from launchbay import storage
from launchbay.config import LaunchbayConfig
from launchbay.errors import LaunchbayError
from launchbay.home import Home
from launchbay.rollout.monitor.retrain import ACTOR
from launchbay.rollout.targets.kube_api import Api

WORKFLOW = ("argoproj.io/v1alpha1", "Workflow")
RETRAIN_DIR = "retrain"
_ENDED = {"Succeeded", "Failed", "Error"}


def template_name(cfg: LaunchbayConfig) -> str:
    """The model's WorkflowTemplate (`launchbay render --target cluster` makes it)."""
    return f"{cfg.model.name}-training"


def workflow(cfg: LaunchbayConfig, name: str, data: str, reference: str) -> dict[str, Any]:
    """The Workflow that retrains on `data` (a URL), drift judged against `reference`."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "name": name,
            "namespace": cfg.argo.namespace,
            "labels": {
                "app.kubernetes.io/name": cfg.model.name,
                "app.kubernetes.io/managed-by": "launchbay",
                "launchbay.io/started-by": ACTOR,
            },
        },
        "spec": {
            "workflowTemplateRef": {"name": template_name(cfg)},
            "arguments": {
                "parameters": [
                    {"name": "data", "value": data},
                    {"name": "reference", "value": reference},
                    {"name": "author", "value": ACTOR},
                ]
            },
        },
    }


class ArgoStarter:
    """Retrains through Argo: upload the window to `store`, create the Workflow, follow its phase."""

    def __init__(self, api: Api, store: str) -> None:
        self.api, self.store = api, store.rstrip("/")

    def _upload(self, local: Path) -> str:
        url = f"{self.store}/{RETRAIN_DIR}/{local.name}"
        fs, path = storage.filesystem(url)
        fs.put(str(local), path)
        return url

    def start(self, cfg: LaunchbayConfig, home: Home, data: Path, reference: Path) -> dict[str, Any]:
        del home  # the workflow's pods have their own
        data_url, reference_url = self._upload(data), self._upload(reference)
        name = f"{cfg.model.name}-retrain-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}"
        self.api.create(workflow(cfg, name, data_url, reference_url))
        return {"workflow": name, "namespace": cfg.argo.namespace, "data_url": data_url}

    def outcome(self, run: dict[str, Any]) -> dict[str, Any] | None:
        if "workflow" not in run:
            return {"succeeded": False, "reason": "no workflow on record"}
        try:
            found = self.api.get(*WORKFLOW, run["namespace"], run["workflow"])
        except LaunchbayError:
            return None  # the API server is away this pass: ask again
        if found is None:
            return {"succeeded": False, "reason": f"workflow {run['workflow']} is gone"}
        status = found.get("status") or {}
        phase = status.get("phase")
        if phase not in _ENDED:
            return None
        failed = [n.get("displayName") for n in (status.get("nodes") or {}).values()
                  if n.get("phase") in ("Failed", "Error") and n.get("type") == "Pod"]  # fmt: skip
        return {
            "succeeded": phase == "Succeeded",
            "phase": phase.lower(),
            "workflow": run["workflow"],
            "stopped_at": failed[0] if failed else None,
            "reason": status.get("message"),
        }
