"""The command line's contract: exit codes, clear messages, no tracebacks for user mistakes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import yaml
from harness import assert_clean_error, closed_port, lb

from launchbay.pipelines.argo import validate


def test_invalid_config_exits_2_naming_file_and_key(tmp_path: Path, lb_home: Path) -> None:
    (tmp_path / "launchbay.yaml").write_text(
        "model: {name: m, train: a.b:c}\ndata: {path: x.csv, features: {}}\n"
    )
    res = lb("run", cwd=tmp_path)
    assert_clean_error(res, 2, "launchbay.yaml: data.features: expected at least one feature")


def test_missing_config_exits_2(tmp_path: Path, lb_home: Path) -> None:
    assert_clean_error(lb("status", cwd=tmp_path), 2, "config file not found")


def test_unreachable_mlflow_fails_before_any_work(project: Callable[..., Path], lb_home: Path) -> None:
    config = project(rows=200, overrides={"mlflow.tracking_uri": f"http://127.0.0.1:{closed_port()}"})
    res = lb("run", cwd=config.parent)
    assert_clean_error(res, 3, "MLflow tracking server", "is unreachable")
    assert not (lb_home / "reports").exists() and not (lb_home / "workflows").exists()


def test_file_tracking_uri_is_refused_with_the_reason(project: Callable[..., Path], lb_home: Path) -> None:
    config = project(rows=200, overrides={"mlflow.tracking_uri": "./mlruns"})
    assert_clean_error(lb("run", cwd=config.parent), 3, "file stores are not supported by MLflow 3")


def test_unknown_stage_for_until_exits_2(project: Callable[..., Path]) -> None:
    config = project(rows=200)
    assert_clean_error(
        lb("run", "--until", "deploy", cwd=config.parent),
        2,
        "expected one of validate-data, train, evaluate, register",
    )


def test_render_writes_valid_argo_yaml(project: Callable[..., Path], tmp_path: Path) -> None:
    config = project(rows=200)
    out = tmp_path / "wf.yaml"
    res = lb("render", "-o", str(out), "--git-commit", "deadbeef", cwd=config.parent)
    assert res.returncode == 0, res.stderr
    manifest = yaml.safe_load(out.read_text())
    assert validate(manifest) == []
    assert {"name": "git-commit", "value": "deadbeef"} in manifest["spec"]["arguments"]["parameters"]


def test_submit_to_unreachable_argo_exits_3(project: Callable[..., Path]) -> None:
    config = project(rows=200)
    res = lb("submit", "--host", f"http://127.0.0.1:{closed_port()}", cwd=config.parent)
    assert_clean_error(res, 3, "Argo server", "unreachable")


def test_status_without_models(project: Callable[..., Path]) -> None:
    config = project(rows=200)
    res = lb("status", cwd=config.parent)
    assert res.returncode == 0 and "no model registered yet" in res.stdout


def test_render_cluster_needs_a_directory(project: Callable[..., Path], tmp_path: Path) -> None:
    config = project(rows=200)
    assert_clean_error(
        lb("render", "--target", "cluster", cwd=config.parent), 2, "writes a directory: give -o DIR"
    )
    a_file = tmp_path / "taken.yaml"
    a_file.write_text("x: 1\n")
    assert_clean_error(
        lb("render", "--target", "cluster", "-o", str(a_file), cwd=config.parent),
        2,
        "expected a directory, found a file",
    )
    assert a_file.read_text() == "x: 1\n"


def _in_a_cluster(config: Path) -> Path:
    doc = yaml.safe_load(config.read_text())
    doc.setdefault("rollout", {}).update(target="kubernetes", prometheus_url="http://prometheus:9090")
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    return config


def test_render_refuses_a_cluster_installation_of_the_local_target(
    project: Callable[..., Path], tmp_path: Path
) -> None:
    config = project(rows=200)
    out = tmp_path / "deploy"
    res = lb("render", "--target", "cluster", "-o", str(out), cwd=config.parent)
    assert_clean_error(res, 2, "rollout.target is 'local'", "--target pipeline-image")
    assert not out.exists()
    assert_clean_error(lb("render", "--target", "model", cwd=config.parent), 2, "rollout.target is 'local'")
    # Building the pipeline image needs no cluster: any target.
    res = lb("render", "--target", "pipeline-image", "-o", str(out), "--json", cwd=config.parent)
    assert res.returncode == 0, res.stderr
    listing = json.loads(res.stdout)
    assert Path(listing["images"]["pipeline_dockerfile"]).is_file() and listing["provide"] == []
    assert sorted(p.name for p in (out / "images").iterdir()) == [
        "pipeline.Dockerfile",
        "pipeline.Dockerfile.dockerignore",
    ]


def test_render_model_writes_the_object_a_team_applies(project: Callable[..., Path], tmp_path: Path) -> None:
    from launchbay.rollout.operator.resource import Settings, onboard

    config = _in_a_cluster(project(rows=200))
    res = lb("render", "--target", "model", "--json", cwd=config.parent)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["kind"] == "Model" and doc["apiVersion"] == "launchbay.io/v1alpha1"
    assert all(k.startswith("-----BEGIN PUBLIC KEY-----") for k in doc["spec"]["trustedKeys"])
    assert "namespace" not in doc["metadata"] and "kubernetes" not in doc["spec"]["config"]
    doc["metadata"].update(namespace="team-a", uid="u1", generation=1)
    onboarded = onboard(doc, Settings(tmp_path / "work", prometheus_url="http://p:9090"))
    assert onboarded.config.kubernetes.namespace == "team-a"
    assert onboarded.config.model.name == doc["metadata"]["name"]


def test_render_cluster_writes_the_models_part_and_lists_what_the_operator_provides(
    project: Callable[..., Path], tmp_path: Path
) -> None:
    config = _in_a_cluster(project(rows=200))
    out = tmp_path / "deploy"
    pushed = f"ghcr.io/team/pipeline@sha256:{'1' * 64}"
    # The CronWorkflow runs for months: the pipeline image by digest, never a tag.
    res = lb("render", "--target", "cluster", "-o", str(out), cwd=config.parent)
    assert_clean_error(res, 2, "a tag", "--image REPOSITORY@sha256")
    res = lb("render", "--target", "cluster", "-o", str(out), "--image", pushed, "--json", cwd=config.parent)
    assert res.returncode == 0, res.stderr
    listing = json.loads(res.stdout)
    assert Path(listing["directory"]) == out
    written = {Path(p).relative_to(out).as_posix() for p in listing["files"]}
    assert {"kustomization.yaml", "model.yaml", "rbac.yaml", "trusted-keys.yaml", "workflow.yaml"} <= written
    assert all((out / rel).is_file() for rel in written)
    kustomization = yaml.safe_load((out / "kustomization.yaml").read_text())
    assert set(kustomization["resources"]) <= written
    # What CI builds, and from which Dockerfile (the pipeline image).
    assert listing["images"]["pipeline"] == pushed
    assert Path(listing["images"]["pipeline_dockerfile"]).is_file()
    provided = {(p["kind"], p["name"]) for p in listing["provide"]}
    assert ("Secret", "launchbay-settings") in provided and all(p["how"] for p in listing["provide"])
    # The human form says how to apply it and what to create first.
    res = lb("render", "--target", "cluster", "-o", str(out), "--image", pushed, cwd=config.parent)
    assert res.returncode == 0 and f"kubectl apply -k {out}" in res.stderr
    assert "launchbay-settings" in res.stderr
