"""`launchbay package`: a registered version as a serving image's build context, an edge bundle, an
AWS Lambda function, an Azure app; `launchbay record-image`: the digest that build pushed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from launchbay.cli.app import AsOpt, ConfigOpt, JsonOpt, ModelRefArg, app, out, whoami
from launchbay.config import load_config
from launchbay.errors import UsageError
from launchbay.home import Home


@app.command()
def package(
    model_ref: ModelRefArg,
    image: Annotated[
        bool,
        typer.Option("--image", help="A serving image's Docker build context (the lean runtime, non-root)."),
    ] = False,
    edge: Annotated[
        bool,
        typer.Option("--edge", help="A device bundle: the ONNX variant, onnxruntime + numpy, no BentoML."),
    ] = False,
    aws_lambda: Annotated[
        bool, typer.Option("--lambda", help="An AWS Lambda function: zip, layer requirements, Dockerfile.")
    ] = False,
    azure: Annotated[
        bool, typer.Option("--azure", help="An Azure Functions app (Python v2, HTTP trigger).")
    ] = False,
    output: Annotated[Path, typer.Option("-o", "--output", help="Directory to write into.")] = Path("dist"),
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Package a registered version from its verified Bento: --image, --edge, --lambda, --azure (any)."""
    from launchbay.registry import MlflowRegistry
    from launchbay.serving import function_package as fp
    from launchbay.serving.deploy import verified_bento
    from launchbay.serving.image import image_context

    if not (image or edge or aws_lambda or azure):
        raise UsageError("say what to package: --image, --edge, --lambda and/or --azure")
    cfg = load_config(config)
    home = Home.resolve(cfg.source).ensure()
    b = verified_bento(cfg, home, model_ref, doing="package")
    name = f"{b.model}-v{b.version}"
    output.mkdir(parents=True, exist_ok=True)
    made = []
    with out.status(f"packaging {name}"):
        if image:
            made.append(image_context(b.src, b.signed, output, b.model, b.version))
        if edge:
            served = (
                MlflowRegistry(cfg, home).get(b.model, b.version).tags.get("launchbay.serving_variant", "")
            )
            made.append(
                fp.edge_bundle(b.src, b.signed, output, name, f"it is served {served}" if served else "")
            )
        if aws_lambda:
            made.append(fp.lambda_package(b.src, b.signed, output, name))
        if azure:
            made.append(fp.azure_package(b.src, b.signed, output, name))
    if as_json:
        from launchbay.rollout.targets.manifests import image as tagged

        push = {"push": tagged(cfg, b.version)}  # the tag the image is pushed as (then its digest recorded)
        packages = [{**p.to_dict(), **push} if p.kind == "image" else p.to_dict() for p in made]
        out.print_json(json.dumps({"model": b.model, "version": b.version, "packages": packages}))
        return
    table = Table(title=f"{name}: packaged from its verified Bento", title_justify="left")
    for col in ("package", "variant", "archive", "sizes (MB)"):
        table.add_column(col, overflow="fold")
    for p in made:
        sizes = ", ".join(f"{k} {v:g}" for k, v in p.sizes_mb.items())
        table.add_row(p.kind, p.variant, str(p.archive), sizes)
    out.print(table)
    out.print(
        "[dim]trusted keys are not packaged: give the device or function the signing key's public half[/]"
    )


@app.command("record-image")
def record_image(
    model_ref: ModelRefArg,
    image_ref: Annotated[
        str,
        typer.Argument(
            metavar="REPOSITORY@sha256:DIGEST", help="What the push printed (kubernetes.image's repository)."
        ),
    ],
    as_: AsOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record the serving image a version's pods run: cluster releases deploy this digest, not a tag."""
    from launchbay.registry import MlflowRegistry, ModelRef
    from launchbay.rollout.targets import images

    ref = ModelRef.parse(model_ref)
    cfg = load_config(config)
    registry = MlflowRegistry(cfg, Home.resolve(cfg.source).ensure())
    version = registry.resolve(ref).version
    who = whoami(as_)
    recorded = images.record(registry, cfg, ref.model, str(version), image_ref, who)
    if as_json:
        out.print_json(
            json.dumps({"model": ref.model, "version": str(version), "image": recorded, "recorded_by": who})
        )
        return
    out.print(f"{ref.model} v{version} runs [bold]{recorded}[/] in a cluster (recorded by {who})")
