"""Pipeline commands: run (on this machine), render (YAML for a cluster), submit (to Argo)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from launchbay.cli.app import AsOpt, ConfigOpt, JsonOpt, app, err, git_commit, out, whoami
from launchbay.config import LaunchbayConfig, load_config
from launchbay.errors import LaunchbayError, PipelineFailed, UsageError
from launchbay.home import HOME_ENV, Home


def _data_path(cfg: LaunchbayConfig, data: Path | None) -> str:
    # --data is relative to where the user is; the config's path is relative to the config file.
    return str(data.resolve()) if data else cfg.resolve_path(cfg.data.path)


@app.command()
def run(
    config: ConfigOpt = None,
    data: Annotated[
        Path | None, typer.Option(help="Train on this CSV/Parquet file instead of data.path.")
    ] = None,
    reference: Annotated[
        Path | None, typer.Option(help="Judge the data's drift against this file instead of data.reference.")
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help="Stop after this step: validate-data, train, evaluate, register, sign, package."),
    ] = None,
    rollout: Annotated[
        bool, typer.Option(help="Continue into the rollout: shadow, canary steps, approval.")
    ] = True,
    traffic: Annotated[
        float,
        typer.Option(min=0, help="Demo requests per second sent through the gateway during the rollout."),
    ] = 0.0,
    as_: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the pipeline on this machine, then roll the new version out.

    Checks the data, trains, gates against the champion, registers, signs and packages; then
    deploys the new version behind the gateway: shadow, canary steps, approval, promotion.
    """
    from launchbay.cli.progress import PipelineView, gate_table, summary, variant_line
    from launchbay.pipelines import warm
    from launchbay.pipelines.executor import LocalExecutor
    from launchbay.pipelines.preflight import require_project
    from launchbay.pipelines.training import build_workflow
    from launchbay.pipelines.training import stages as pipeline_stages
    from launchbay.registry import CHAMPION, preflight

    cfg = load_config(config)
    # The steps' server for this environment: found, or started to import while the project is checked.
    warm.starter().prestart(Home.resolve(cfg.source).root / "steps")
    all_steps = pipeline_stages(cfg)
    if until is not None and until not in all_steps:
        raise UsageError(f"--until {until!r}: expected one of {', '.join(all_steps)}")
    data_path = _data_path(cfg, data)
    require_project(cfg, data_path)  # a wrong model.train is named now, not after the data gate
    home = Home.resolve(cfg.source).ensure()
    uri = preflight(cfg, home)
    assert cfg.source is not None
    if reference is not None and not reference.is_file():
        raise UsageError(f"--reference {reference}: no such file")
    workflow = build_workflow(
        cfg, config=str(cfg.source), data=data_path, git_commit=git_commit(cfg.base_dir),
        reference=str(reference.resolve()) if reference else "",
    )  # fmt: skip
    # Steps import the user's training module: the project's directory is importable, and it is
    # the only directory added (launchbay itself is installed; its sources are never put first).
    pythonpath = os.pathsep.join(p for p in (str(cfg.base_dir), os.environ.get("PYTHONPATH", "")) if p)
    stages = list(all_steps[: all_steps.index(until) + 1] if until else all_steps)
    console = err if as_json else out  # with --json, stdout carries the JSON document only
    console.print(f"[bold]{cfg.model.name}[/]: data [cyan]{data_path}[/], tracking [cyan]{uri}[/]")
    view = PipelineView(console, stages)
    executor = LocalExecutor(
        home.workflows, env={HOME_ENV: str(home.root), "PYTHONPATH": pythonpath}, on_change=view.update
    )
    try:
        with view:
            result = executor.run(workflow, until=until)
    finally:
        warm.starter().stop()
    console.print(summary(result, list(all_steps)))
    run_id = result.tasks["validate-data"].outputs.get("run-id") if "validate-data" in result.tasks else None
    gate = _report(home, run_id, "model_gate")
    if gate is not None:
        console.print(gate_table(gate))
    variant = _report(home, run_id, "onnx_variant")
    if variant is not None:
        console.print(variant_line(variant))
    doc: dict[str, Any] = {
        "model": cfg.model.name,
        "succeeded": result.succeeded,
        "steps": {
            n: {"phase": r.phase.value, "seconds": round(r.seconds, 2), "outputs": r.outputs}
            for n, r in result.tasks.items()
        },
        "model_gate": gate,
        "onnx_variant": variant,
        "version": None,
        "aliases": [],
        "release": None,
    }
    if not result.succeeded:
        failed = result.failed
        _emit(doc, as_json)
        raise PipelineFailed(f"pipeline stopped at step {failed.name if failed else '?'}")
    reg = result.tasks.get("register")
    if reg is None:
        _emit(doc, as_json)
        return
    version, aliases = reg.outputs.get("model-version"), reg.outputs.get("aliases", "").split(",")
    doc.update(version=version, aliases=aliases)
    console.print(f"[green]Registered[/] {cfg.model.name} version {version} as [bold]{', '.join(aliases)}[/]")
    if CHAMPION in aliases:
        console.print(f"[yellow]No champion existed: version {version} is now the champion (bootstrap).[/]")
    if not (rollout and until is None and version):
        _emit(doc, as_json)
        return
    if cfg.rollout.target != "local":
        console.print(f"rollout.target is {cfg.rollout.target}: use `launchbay submit` for a cluster")
        _emit(doc, as_json)
        return
    from launchbay.rollout import drive, wiring
    from launchbay.rollout import view as release_view

    ctx = wiring.rollout(cfg, home)
    release = drive.create(ctx, str(version), whoami(as_), console)
    release = drive.drive(ctx, release, console, traffic=traffic, data=data_path)
    doc["release"] = release_view.release_dict(release, {}, None)
    _emit(doc, as_json)


def _emit(doc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(doc, default=str))


def _report(home: Home, run_id: str | None, gate: str) -> dict[str, Any] | None:
    """A gate's report of this run (`model_gate`, `onnx_variant`), if the gate ran."""
    if not run_id:
        return None
    path = home.reports / run_id / f"{gate}.json"
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc


@app.command()
def render(
    config: ConfigOpt = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write here instead of stdout.")
    ] = None,
    commit: Annotated[
        str | None, typer.Option("--git-commit", help="Commit to record (default: the checked-out one).")
    ] = None,
    target: Annotated[
        str,
        typer.Option(
            help="argo (the pipeline's Workflow), argo-template (WorkflowTemplate + CronWorkflow), "
            "model (the Model object a team applies where launchbay's chart is installed), "
            "cluster (the model's part where launchbay's chart is installed, a kustomize directory: "
            "needs -o DIR and --image), "
            "pipeline-image (the pipeline image's Dockerfile: needs -o DIR), "
            "or kubernetes|knative|cloud-run (a release's manifests)."
        ),
    ] = "argo",
    version: Annotated[str | None, typer.Option(help="kubernetes/knative: the version to release.")] = None,
    stable: Annotated[
        str | None, typer.Option(help="kubernetes/knative: the version serving now (renders a canary).")
    ] = None,
    weight: Annotated[int, typer.Option(min=0, max=100, help="Canary weight with --stable.")] = 0,
    image: Annotated[
        str | None,
        typer.Option(
            help="kubernetes/knative/cloud-run: --version's image, REPOSITORY@sha256:... "
            "(default: the digest recorded with `launchbay record-image`)."
        ),
    ] = None,
    stable_image: Annotated[str | None, typer.Option(help="The same for --stable.")] = None,
    schedule: Annotated[
        str, typer.Option(help="argo-template: when the CronWorkflow retrains (cron syntax).")
    ] = "0 3 * * 1",
    as_json: Annotated[
        bool, typer.Option("--json", help="Write JSON (a list of objects) instead of YAML.")
    ] = False,
) -> None:
    """Write YAML: the Argo Workflow of the pipeline, or the objects a cluster target applies.

    Everything is validated first: the Workflow against Argo's schema, core kinds with
    kubernetes-validate, HTTPRoute and Knative Service against their CRDs.
    """
    from launchbay.pipelines.argo import for_argo, template_and_cron, to_yaml

    cfg = load_config(config)
    if target in ("cluster", "pipeline-image"):
        _render_cluster(cfg, output, commit, as_json, images_only=target == "pipeline-image", image=image)
        return
    if target == "model":
        _render_model(cfg, output, as_json)
        return
    if target in ("kubernetes", "knative", "cloud-run"):
        from launchbay.rollout.targets.manifests import release_objects
        from launchbay.rollout.targets.validate import InvalidObject, check

        if version is None:
            raise UsageError(f"--target {target} needs --version N (the version to release)")
        refs = _image_digests(cfg, {version: image, **({stable: stable_image} if stable else {})})
        try:
            objects = release_objects(cfg, target, version, stable, weight, refs)
        except ValueError as exc:  # a setting the target needs is missing
            raise UsageError(f"--target {target}: {exc}") from None
        try:
            check(objects)  # Cloud Run's Service is a Knative Service too: the same CRD checks it
        except InvalidObject as exc:
            raise PipelineFailed(str(exc)) from None
    elif target in ("argo", "argo-template"):
        sha = commit if commit is not None else git_commit(cfg.base_dir)
        cfg = _pipeline_image(cfg, image, required=target == "argo-template")
        if target == "argo":
            objects = [for_argo(cfg, sha).to_dict()]
        else:
            objects = list(template_and_cron(cfg, sha, schedule))
    else:
        expected = "argo, argo-template, model, cluster, pipeline-image, kubernetes, knative or cloud-run"
        raise UsageError(f"--target {target!r}: expected {expected}")
    if as_json:
        text = json.dumps(objects, indent=2, default=str) + "\n"
    else:
        text = "---\n".join(to_yaml(o) for o in objects)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        err.print(f"wrote {output}")


def _pipeline_image(cfg: LaunchbayConfig, given: str | None, required: bool) -> LaunchbayConfig:
    """The config with the pipeline image `given` (a digest reference). A CronWorkflow runs for
    months: it must run the image CI pushed, not whatever a tag points at by then.

    Raises:
        UsageError: `given` is not a digest reference; `required` and neither it nor argo.image is one.
    """
    from launchbay.rollout.targets.images import is_digest

    if given is not None and not is_digest(given):
        raise UsageError(f"--image {given!r}: expected REPOSITORY@sha256:<64 hex digits>, not a tag")
    chosen = given or cfg.argo.image
    if required and not is_digest(chosen):
        raise UsageError(
            f"argo.image is {chosen!r}, a tag: the CronWorkflow must run the pipeline image by digest; "
            "give --image REPOSITORY@sha256:... (what the push printed)"
        )
    return cfg.model_copy(update={"argo": cfg.argo.model_copy(update={"image": chosen})})


def _image_digests(cfg: LaunchbayConfig, given: dict[str, str | None]) -> dict[str, str]:
    """The digest each version's pods run: given, else recorded in the registry. A tag can be
    pushed again under a running release, so manifests never carry one.

    Raises:
        UsageError: a version with neither (the message says how to record one).
    """
    from launchbay.registry import MlflowRegistry
    from launchbay.rollout.targets import images

    refs: dict[str, str] = {}
    registry = None
    for v, ref in given.items():
        if ref is None:
            try:
                registry = registry or MlflowRegistry(cfg, Home.resolve(cfg.source))
                ref = images.recorded(registry, cfg.model.name, v)
            except LaunchbayError:
                ref = None
        if ref is None:
            flag = "--image" if v == next(iter(given)) else "--stable-image"
            raise UsageError(
                f"version {v} has no recorded image digest: record what the push printed with "
                f"`launchbay record-image {cfg.model.name}@{v} REPOSITORY@sha256:...`, or give {flag}"
            )
        refs[v] = images.checked(cfg, v, ref)
    return refs


def _render_model(cfg: LaunchbayConfig, output: Path | None, as_json: bool) -> None:
    """The Model object a team applies in its namespace (config, trusted keys, approvers as data)."""
    from launchbay.checks.keys import trusted_keys
    from launchbay.rollout.operator.resource import model_object

    keys = trusted_keys(cfg, Home.resolve(cfg.source))
    doc = model_object(cfg, keys)
    text = json.dumps(doc, indent=2) + "\n" if as_json else to_yaml_text(doc)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        err.print(f"wrote {output}; apply in the team's namespace: kubectl -n NAMESPACE apply -f {output}")


def to_yaml_text(doc: dict[str, Any]) -> str:
    from launchbay.pipelines.argo import to_yaml

    return to_yaml(doc)


def _render_cluster(
    cfg: LaunchbayConfig,
    output: Path | None,
    commit: str | None,
    as_json: bool,
    images_only: bool = False,
    image: str | None = None,
) -> None:
    from launchbay.checks.keys import trusted_keys
    from launchbay.pipelines import cluster

    what = "pipeline-image" if images_only else "cluster"
    if output is None:
        raise UsageError(f"--target {what} writes a directory: give -o DIR")
    if output.exists() and not output.is_dir():
        raise UsageError(f"-o {output}: expected a directory, found a file")
    if not images_only:
        cluster.require_cluster_target(cfg)
        cfg = _pipeline_image(cfg, image, required=True)  # the CronWorkflow runs for months
    keys = [] if images_only else trusted_keys(cfg, Home.resolve(cfg.source))
    sha = commit if commit is not None else git_commit(cfg.base_dir)
    written = cluster.write(cfg, output, keys, sha, images_only=images_only)
    provided = [] if images_only else [p.__dict__ for p in cluster.operator_provided(cfg)]
    # What CI builds: the pipeline image from the written Dockerfile, the serving image per version.
    built = {
        "pipeline": cfg.argo.image,
        "pipeline_dockerfile": str(output / "images" / "pipeline.Dockerfile"),
        "serving": cfg.kubernetes.image,
    }
    if as_json:
        out.print_json(
            data={
                "directory": str(output),
                "files": [str(p) for p in written],
                "provide": provided,
                "images": built,
            }
        )
        return
    if images_only:
        dockerfile = built["pipeline_dockerfile"]
        err.print(f"wrote {len(written)} files to {output}; build with: docker build -f {dockerfile} .")
        return
    err.print(f"wrote {len(written)} files to {output}; apply with: kubectl apply -k {output}")
    err.print("create first (never rendered):")
    for p in provided:
        err.print(f"  {p['kind']} {p['namespace']}/{p['name']}: {p['how']}", markup=False, highlight=False)


@app.command()
def submit(
    host: Annotated[
        str, typer.Option(help="Argo server URL, e.g. https://argo.example.com:2746.", envvar="ARGO_SERVER")
    ],
    namespace: Annotated[str | None, typer.Option(help="Namespace (default: argo.namespace).")] = None,
    config: ConfigOpt = None,
    token: Annotated[
        str | None, typer.Option(help="Bearer token.", envvar="ARGO_TOKEN", show_default=False)
    ] = None,
    image: Annotated[
        str | None,
        typer.Option(
            help="The pipeline image to run, as pushed (REPOSITORY@sha256:...); default: argo.image.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Submit the pipeline to an Argo Workflows server."""
    from launchbay.pipelines.argo import for_argo
    from launchbay.pipelines.argo import submit as argo_submit

    cfg = load_config(config)
    if image is not None:
        if not image or any(c.isspace() for c in image):
            raise UsageError(f"--image {image!r}: expected an image reference, e.g. REPOSITORY@sha256:...")
        cfg = cfg.model_copy(update={"argo": cfg.argo.model_copy(update={"image": image})})
    ns = namespace or cfg.argo.namespace
    name = argo_submit(for_argo(cfg, git_commit(cfg.base_dir)), host, ns, token)
    if as_json:
        out.print_json(json.dumps({"workflow": name, "namespace": ns, "host": host}))
    else:
        out.print(f"submitted workflow [bold]{name}[/] to {host} (namespace {ns})")
