"""The Argo side of the pipeline: render the workflow to YAML, validate it, submit it."""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from launchbay.config import LaunchbayConfig
from launchbay.errors import EnvironmentProblem, LaunchbayError

SCHEMA_ENV = "LAUNCHBAY_ARGO_SCHEMA"
_SCHEMA_NAME = "argo-workflows-v4.1.2.schema.json"
_WORKFLOW_DEF = "io.argoproj.workflow.v1alpha1.Workflow"


def to_yaml(manifest: dict[str, Any]) -> str:
    """Stable YAML for a manifest (key order as built, no aliases)."""
    return yaml.safe_dump(manifest, sort_keys=False, default_flow_style=False, width=120)


@cache
def _schema(path: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(path).read_text())
    return data


def schema_path() -> Path:
    """Argo Workflows' own JSON schema: `$LAUNCHBAY_ARGO_SCHEMA`, else the copy shipped with launchbay."""
    if env := os.environ.get(SCHEMA_ENV):
        return Path(env)
    return Path(__file__).resolve().parent / "schemas" / _SCHEMA_NAME


def validate(manifest: dict[str, Any], kind_def: str = _WORKFLOW_DEF) -> list[str]:
    """Validate a manifest against Argo's schema; return the problems (empty when valid)."""
    import jsonschema

    schema = _schema(str(schema_path()))
    resolver_schema = {"$ref": f"#/definitions/{kind_def}", "definitions": schema["definitions"]}
    validator = jsonschema.Draft7Validator(resolver_schema)
    return [
        f"{'.'.join(str(p) for p in err.absolute_path) or '(root)'}: {err.message}"
        for err in sorted(validator.iter_errors(manifest), key=lambda e: list(map(str, e.absolute_path)))
    ]


def for_argo(cfg: LaunchbayConfig, git_commit: str) -> Any:
    """The training workflow as it runs in a cluster (paths as inside the image), validated.

    Its pods get the cluster's secrets, keys, resources and retries (`pods.for_cluster`).

    Raises:
        LaunchbayError: the rendered workflow does not satisfy Argo's schema.
    """
    from launchbay.pipelines.pods import for_cluster
    from launchbay.pipelines.training import build_workflow

    wf = for_cluster(
        build_workflow(
            cfg,
            config=cfg.argo.config_path,
            data=cfg.data.path,
            git_commit=git_commit,
            rollout=cfg.rollout.target != "local",
        ),
        cfg,
    )
    if problems := validate(wf.to_dict()):
        raise LaunchbayError("rendered workflow is not valid for Argo:\n" + "\n".join(problems))
    return wf


_WORKFLOW_TEMPLATE_DEF = "io.argoproj.workflow.v1alpha1.WorkflowTemplate"
_CRON_DEF = "io.argoproj.workflow.v1alpha1.CronWorkflow"


def template_and_cron(
    cfg: LaunchbayConfig, git_commit: str, schedule: str = "0 3 * * 1"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The training workflow as a `WorkflowTemplate`, and a `CronWorkflow` retraining on `schedule`.

    The template is the same spec `render` and `submit` produce; the cron workflow refers to it,
    never runs two trainings at once (concurrencyPolicy Forbid) and keeps a short history.

    Raises:
        LaunchbayError: either object does not satisfy Argo's schema.
    """
    spec = for_argo(cfg, git_commit).to_dict()["spec"]
    name = f"{cfg.model.name}-training"
    labels = {"app.kubernetes.io/name": cfg.model.name, "app.kubernetes.io/managed-by": "launchbay"}
    template = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {"name": name, "namespace": cfg.argo.namespace, "labels": labels},
        "spec": spec,
    }
    cron = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "CronWorkflow",
        "metadata": {"name": f"{cfg.model.name}-retrain", "namespace": cfg.argo.namespace, "labels": labels},
        "spec": {
            "schedules": [schedule],
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "workflowSpec": {"workflowTemplateRef": {"name": name}},
        },
    }
    problems = validate(template, _WORKFLOW_TEMPLATE_DEF) + validate(cron, _CRON_DEF)
    if problems:
        raise LaunchbayError("rendered Argo objects are not valid:\n" + "\n".join(problems))
    return template, cron


def resume_approval(host: str, token: str | None, namespace: str, workflow: str, approval: str) -> None:
    """Supply the signed `approval` (JSON) to the workflow's approval node and resume it (Argo API).

    The same as `argo node set WF --output-parameter approval=JSON --node-field-selector
    displayName=approval` followed by `argo resume WF --node-field-selector displayName=approval`.

    Raises:
        EnvironmentProblem: the server is unreachable or refuses.
    """
    import json

    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    selector = "displayName=approval"
    base = f"{host.rstrip('/')}/api/v1/workflows/{namespace}/{workflow}"
    calls = [
        ("set", {"outputParameters": json.dumps({"approval": approval})}),
        ("resume", {}),
    ]
    for verb, extra in calls:
        body = {"name": workflow, "namespace": namespace, "nodeFieldSelector": selector, **extra}
        try:
            r = httpx.put(f"{base}/{verb}", json=body, headers=headers, timeout=15)
        except httpx.HTTPError as exc:
            raise EnvironmentProblem(f"Argo server {host} is unreachable: {exc}") from None
        if r.status_code != 200:
            raise EnvironmentProblem(
                f"Argo server {host} refused to {verb} {workflow} ({r.status_code}): {r.text}"
            )


def submit(workflow: Any, host: str, namespace: str, token: str | None) -> str:
    """Create the workflow on an Argo server; return the created workflow's name.

    Raises:
        EnvironmentProblem: the server cannot be reached, or refuses the workflow.
    """
    import requests
    from hera.workflows import WorkflowsService

    workflow.namespace = namespace
    workflow.workflows_service = WorkflowsService(host=host, token=token, namespace=namespace)
    try:
        created = workflow.create()
    except requests.exceptions.ConnectionError:
        raise EnvironmentProblem(
            f"Argo server {host} is unreachable (connection refused or no route); check --host"
        ) from None
    except requests.exceptions.Timeout:
        raise EnvironmentProblem(f"Argo server {host} did not answer in time") from None
    except Exception as exc:  # hera raises its own exceptions carrying the server's message
        raise EnvironmentProblem(f"Argo server {host} refused the workflow: {exc}") from None
    return str(created.metadata.name)
