"""The training workflow: validate-data >> train >> evaluate >> register >> sign >> package.

The same `Workflow` object is rendered to YAML for Argo (`launchbay render`, `launchbay submit`)
and run by the local executor (`launchbay run`). Workflow parameters carry everything that
differs between the two (the config file's path, the data, the git commit); the config file is
read by each step, so the steps need no other context.
"""

from __future__ import annotations

import copy

from hera.workflows import DAG, Parameter, Script, Suspend, Task, Workflow

from launchbay.config import LaunchbayConfig

# Imported here, never inside a Workflow context: Hera's @script registers a module's templates
# with whatever workflow is being built when the module is first imported.
from launchbay.pipelines import rollout_steps as delivery
from launchbay.pipelines import steps

STAGES = ("validate-data", "train", "evaluate", "register", "sign", "package")
"""Task names in pipeline order: the values `launchbay run --until` accepts."""


def stages(cfg: LaunchbayConfig) -> tuple[str, ...]:
    """The steps a local run of this config goes through (`measure` when serving.measure is on)."""
    return (*STAGES, "measure") if cfg.serving.measure else STAGES

_P = "{{workflow.parameters.%s}}"


def build_workflow(
    cfg: LaunchbayConfig, *, config: str, data: str, git_commit: str = "", rollout: bool = False,
    reference: str = "",
) -> Workflow:
    """Build the training workflow for a model.

    Args:
        cfg: the parsed config (model name, Argo image, namespace, service account).
        config: path of the config file as the steps will see it.
        data: path or URI of the training data as the steps will see it.
        git_commit: the commit being trained, recorded on the MLflow run and model version.
        reference: what the data gate compares the data's drift with ("": `data.reference`); a
            retrain the monitor started after live drift gives the drifted live rows.
        rollout: add release -> approval (an Argo Suspend node) -> promote after packaging, for
            the cluster targets. The local run rolls out in the launchbay process instead.
    """
    with (
        Workflow(
            generate_name=f"{cfg.model.name}-training-",
            entrypoint="pipeline",
            namespace=cfg.argo.namespace,
            service_account_name=cfg.argo.service_account or f"{cfg.model.name}-pipeline",
            labels={"app.kubernetes.io/part-of": "launchbay", "launchbay.io/model": cfg.model.name},
            arguments={"config": config, "data": data, "git-commit": git_commit, "reference": reference}
            | ({"author": ""} if rollout else {}),
        ) as w,
        DAG(name="pipeline"),
    ):
        base = {"config": _P % "config"}
        v = _task(
            steps.validate_data(
                arguments={
                    **base,
                    "data": _P % "data",
                    "git-commit": _P % "git-commit",
                    "reference": _P % "reference",
                }
            )
        )
        t = _task(steps.train(arguments={**base, "data": _P % "data", "run-id": v.get_parameter("run-id")}))
        e = _task(
            steps.evaluate(
                arguments={
                    **base,
                    "data": _P % "data",
                    "run-id": v.get_parameter("run-id"),
                    "model-uri": t.get_parameter("model-uri"),
                }
            )
        )
        r = _task(
            steps.register(
                arguments={
                    **base,
                    "run-id": v.get_parameter("run-id"),
                    "model-uri": t.get_parameter("model-uri"),
                    "data-digest": v.get_parameter("data-digest"),
                }
            )
        )
        sg = _task(
            steps.sign_model(
                arguments={
                    **base,
                    "data": _P % "data",
                    "run-id": v.get_parameter("run-id"),
                    "model-version": r.get_parameter("model-version"),
                    "data-digest": v.get_parameter("data-digest"),
                }
            )
        )
        pk = _task(steps.package(arguments={**base, "model-version": r.get_parameter("model-version")}))
        v >> t
        t >> e
        e >> r
        r >> sg
        sg >> pk
        last = pk
        if cfg.serving.measure:
            ms = _task(
                delivery.measure_step(arguments={**base, "model-version": r.get_parameter("model-version")})
            )
            pk >> ms
            last = ms
        if rollout:
            rel = _task(
                delivery.release_step(
                    arguments={
                        **base,
                        "model-version": r.get_parameter("model-version"),
                        "workflow": "{{workflow.name}}",
                        "namespace": "{{workflow.namespace}}",
                        "author": _P % "author",
                    }
                )
            )
            # Argo takes the signed approval when the node is resumed (`valueFrom: supplied`).
            approval = Suspend(
                name=delivery.APPROVAL_NODE,
                intermediate_parameters=[
                    Parameter(name="approval", default="", description="a release manager's signed approval")
                ],
            )
            wait = Task(name=delivery.APPROVAL_NODE, template=approval)
            promote = _task(
                delivery.promote_step(
                    arguments={
                        **base,
                        "release-id": rel.get_parameter("release-id"),
                        "approval": "{{tasks.approval.outputs.parameters.approval}}",
                    }
                )
            )
            last >> rel
            rel >> wait
            wait >> promote
    # The step templates are module-level singletons created by `@script`; give this workflow
    # its own copies carrying the configured image instead of mutating the shared ones.
    w.templates = [_with_image(t, cfg.argo.image) if isinstance(t, Script) else t for t in w.templates]
    return w


def _task(node: object) -> Task:
    """A step called inside a DAG context is a Task (typed as a union by Hera)."""
    assert isinstance(node, Task), node
    return node


def _with_image(template: Script, image: str) -> Script:
    clone = copy.copy(template)
    clone.image = image
    return clone
