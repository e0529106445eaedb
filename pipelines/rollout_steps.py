"""The rollout as steps of the Argo workflow (cluster targets): release -> approval -> promote.

`release` records the release in the shared ledger and drives it (shadow, canary steps) until it
waits for approval; `approval` is an Argo `Suspend` node whose `approval` parameter -- a signed
statement -- is supplied when it is resumed; `promote` checks it with launchbay's rules (the
signer's configured key, the approvers list, never the author) and promotes. `launchbay approve
--argo-host` signs, supplies the parameter and resumes the node through the Argo API.

No `from __future__ import annotations` here: Hera reads the parameter annotations at runtime.
"""

import sys
import time
from typing import Annotated

from hera.workflows import Parameter, script

APPROVAL_NODE = "approval"
"""Display name of the Suspend node that waits for a release manager."""


def _fail(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
    raise SystemExit(1)


@script(name="measure", constructor="runner")
def measure_step(
    config: str,
    model_version: Annotated[str, Parameter(name="model-version")],
) -> Annotated[str, Parameter(name="measurements")]:
    """Serve the packaged version and measure it; store the figures and log them to MLflow.

    Returns:
        A one-line summary (the full figures are in the state directory and on the MLflow run).
    """
    import mlflow

    from launchbay.config import load_config
    from launchbay.home import Home
    from launchbay.registry import MlflowRegistry
    from launchbay.rollout import measure
    from launchbay.rollout.local.clients import sample_rows

    cfg = load_config(config)
    home = Home.resolve(cfg.source).ensure()
    rows = sample_rows(cfg.resolve_path(cfg.data.path), list(cfg.data.features), n=200)
    m = measure.measure(cfg, home, model_version, rows, seconds=3.0)
    run_id = MlflowRegistry(cfg, home).get(cfg.model.name, model_version).run_id
    if run_id:
        with mlflow.start_run(run_id=run_id):
            mlflow.log_metrics(
                {
                    "serving.cold_start_s": m.cold_start_s,
                    "serving.p95_ms_c1": m.levels[0].p95_ms,
                    "serving.max_rps_within_slo": m.max_rps_within_slo,
                    "serving.memory_mb": m.memory_mb,
                    "serving.package_mb": m.package_mb,
                }
            )
    return (
        f"cold start {m.cold_start_s:.1f}s, p95 {m.levels[0].p95_ms:.0f} ms, "
        f"{m.max_rps_within_slo:.0f} req/s within SLO, {m.memory_mb:.0f} MB"
    )


@script(name="release", constructor="runner")
def release_step(
    config: str,
    model_version: Annotated[str, Parameter(name="model-version")],
    workflow: str = "",
    namespace: str = "",
    author: str = "",
) -> Annotated[str, Parameter(name="release-id")]:
    """Create the release and drive it until it waits for approval (fails if it is rolled back).

    Returns:
        The release id, for the approval and promote steps.
    """
    from launchbay.config import load_config
    from launchbay.errors import UsageError
    from launchbay.home import Home
    from launchbay.rollout import wiring
    from launchbay.rollout.engine import controller as ctl
    from launchbay.rollout.engine import operations
    from launchbay.rollout.engine.phases import Phase
    from launchbay.rollout.targets import images

    cfg = load_config(config)
    ctx = wiring.rollout(cfg, Home.resolve(cfg.source).ensure())
    if cfg.rollout.target in images.CLUSTER_TARGETS:
        # CI builds the image of the version this workflow just packaged and records its digest.
        try:
            images.wait(cfg, ctx.registry, cfg.model.name, model_version, cfg.kubernetes.image_wait,
                        say=lambda line: print(line, flush=True))  # fmt: skip
        except UsageError as exc:
            _fail(str(exc))
    release = operations.create(ctx, model_version, author or "argo-workflow")
    if workflow:
        ctx.ledger.record(
            release,
            actor="argo-workflow",
            action="argo-workflow",
            reason=f"approval through Argo workflow {namespace}/{workflow}",
            evidence={"workflow": workflow, "namespace": namespace, "node": APPROVAL_NODE},
        )
    release = ctl.run(
        wiring.controller(ctx),
        release,
        interval=cfg.rollout.interval,
        until=lambda r: r.phase is Phase.AWAITING_APPROVAL or not (r.phase.live or r.phase is Phase.PENDING),
        on_tick=lambda r: print(f"{time.strftime('%H:%M:%S')} {r.name}: {r.phase.value}", flush=True),
    )
    if release.phase is not Phase.AWAITING_APPROVAL:
        last = ctx.ledger.history(release_id=release.id)[-1]
        _fail(f"{release.name} {release.phase.value}: {last.reason}")
    return str(release.id)


@script(name="promote", constructor="runner")
def promote_step(
    config: str,
    release_id: Annotated[str, Parameter(name="release-id")],
    approval: str,
) -> None:
    """Promote the release with the signed approval supplied when the approval node was resumed.

    `approval` is the JSON of a signed statement (`launchbay approve --argo-host` makes it): the
    same rules as on one machine apply -- the signer's configured key, the approvers list, four
    eyes -- and the statement must be about this release.
    """
    import json

    from launchbay.checks.approvals import SignedStatement
    from launchbay.config import load_config
    from launchbay.errors import LaunchbayError
    from launchbay.home import Home
    from launchbay.rollout import daemon, wiring
    from launchbay.rollout.engine import decisions

    cfg = load_config(config)
    ctx = wiring.rollout(cfg, Home.resolve(cfg.source).ensure())
    try:
        signed = SignedStatement.from_dict(json.loads(approval))
    except (ValueError, KeyError, TypeError) as exc:
        _fail(f"the approval supplied to the workflow is not a signed statement: {exc}")
    if str(signed.statement.release_id) != release_id:
        _fail(f"the signed approval is for release #{signed.statement.release_id}, not #{release_id}")
    try:
        release = decisions.approve(ctx, signed)
        world = daemon.follow(ctx)  # the promotion recorded, the cluster now follows it
    except LaunchbayError as exc:
        _fail(exc.message)
    if not world.ok:
        _fail(f"{release.name} is promoted in the ledger, but: {'; '.join(world.problems)}")
    print(f"{release.name} promoted ({world.desired.describe()}); approved by {signed.statement.approver}",
          flush=True)  # fmt: skip
