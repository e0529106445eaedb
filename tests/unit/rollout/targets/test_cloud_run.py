"""The Cloud Run rendering against Cloud Run's own published Admin API v1 schema.

The schema is Google's discovery document for run.googleapis.com v1, as google-api-python-client
ships it (`googleapiclient/discovery_cache/documents/run.v1.json`). It is turned into a JSON Schema
that refuses any field the API does not define, and every field the document marks "Not
supported by Cloud Run" is refused too; the annotations are held to the ones Cloud Run's YAML
reference documents for a revision template.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from harness import lb
from rollout_fakes import ROLLOUT

from launchbay.config import LaunchbayConfig
from launchbay.rollout.targets.base import Backend, Routes
from launchbay.rollout.targets.manifests import cloud_run_service, knative_service
from launchbay.rollout.targets.validate import problems

TEMPLATE_ANNOTATIONS = {  # https://cloud.google.com/run/docs/reference/yaml/v1 (revision template)
    "autoscaling.knative.dev/minScale",
    "autoscaling.knative.dev/maxScale",
    "run.googleapis.com/cpu-throttling",
    "run.googleapis.com/startup-cpu-boost",
    "run.googleapis.com/sessionAffinity",
    "run.googleapis.com/execution-environment",
}
GCP_LABEL = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")  # Google Cloud label keys (and values, but may be empty)


def _discovery() -> dict[str, Any]:
    import googleapiclient

    path = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "run.v1.json"
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def _json_schema(discovery: dict[str, Any], root: str) -> dict[str, Any]:
    """The discovery document's schemas as a strict JSON Schema rooted at `root`."""

    def convert(prop: dict[str, Any]) -> dict[str, Any]:
        if "$ref" in prop:
            return {"$ref": f"#/definitions/{prop['$ref']}"}
        out: dict[str, Any] = {}
        kind = prop.get("type")
        if kind == "object" and "properties" in prop:
            out = {"type": "object", "additionalProperties": False,
                   "properties": {k: convert(v) for k, v in prop["properties"].items()}}  # fmt: skip
        elif kind == "object":
            out = {"type": "object"}
            if "additionalProperties" in prop:
                out["additionalProperties"] = convert(prop["additionalProperties"])
        elif kind == "array":
            out = {"type": "array", "items": convert(prop.get("items", {}))}
        elif kind in ("string", "integer", "number", "boolean"):
            out = {"type": kind}
            if "enum" in prop:
                out["enum"] = prop["enum"]
        return out

    definitions = {name: convert(s) for name, s in discovery["schemas"].items()}
    return {"$ref": f"#/definitions/{root}", "definitions": definitions}


def _unsupported(obj: Any, schema_name: str, schemas: dict[str, Any], where: str = "") -> list[str]:
    """Paths of the fields `obj` sets that the discovery document says Cloud Run does not support."""
    found = []
    props = schemas[schema_name].get("properties", {})
    for key, value in (obj or {}).items():
        prop = props.get(key, {})
        # The field itself is unsupported ("Not supported by Cloud Run."), not a use of it
        # ("Variable references are not supported in Cloud Run").
        if re.match(r"(\[Deprecated\] )?Not supported (by|in) Cloud Run", prop.get("description", "")):
            found.append(f"{where}{key}")
        target = prop.get("$ref") or prop.get("items", {}).get("$ref")
        if target and isinstance(value, dict):
            found += _unsupported(value, target, schemas, f"{where}{key}.")
        elif target and isinstance(value, list):
            for i, item in enumerate(value):
                found += _unsupported(item, target, schemas, f"{where}{key}[{i}].")
    return found


def cloud_run_config(**cloud_run: Any) -> LaunchbayConfig:
    return LaunchbayConfig.model_validate(
        {
            "model": {"name": "fraud-detector", "train": "pkg.mod:train"},
            "data": {"path": "d.csv", "features": {"x": {"type": "float"}}},
            "rollout": {**ROLLOUT, "target": "knative", "shadow": None},
            "cloud_run": {"project": "123456789012", "region": "europe-west1", **cloud_run},
        }
    )


CANARY = Routes(stable=Backend("2", ""), canary=Backend("3", ""), canary_weight=25)


@pytest.mark.parametrize("extra", [{}, {"service_account": "model@proj.iam.gserviceaccount.com"}])
def test_the_cloud_run_rendering_is_valid_against_cloud_runs_own_v1_schema(extra: dict[str, Any]) -> None:
    discovery = _discovery()
    svc = cloud_run_service(cloud_run_config(**extra), "3", CANARY)
    jsonschema.validate(svc, _json_schema(discovery, "Service"))  # no field Cloud Run does not define
    assert _unsupported(svc, "Service", discovery["schemas"]) == []
    assert problems(svc) == []  # and still a valid Knative Service


def test_the_cloud_run_dialect_is_the_documented_one() -> None:
    svc = cloud_run_service(cloud_run_config(), "3", CANARY)
    meta, template = svc["metadata"], svc["spec"]["template"]
    assert meta["namespace"] == "123456789012"  # the project, not a Kubernetes namespace
    assert meta["labels"]["cloud.googleapis.com/location"] == "europe-west1"
    assert set(template["metadata"]["annotations"]) <= TEMPLATE_ANNOTATIONS
    assert template["metadata"]["annotations"]["autoscaling.knative.dev/minScale"] == "0"
    assert template["metadata"]["name"].startswith("fraud-detector-")  # revision names carry the service's
    labels = {**meta["labels"], **template["metadata"]["labels"]}
    labels.pop("cloud.googleapis.com/location")
    assert all(GCP_LABEL.match(k) and re.match(r"^[a-z0-9_-]{0,63}$", v) for k, v in labels.items()), labels
    assert svc["spec"]["traffic"] == [
        {"revisionName": "fraud-detector-v2", "percent": 75, "tag": "v2"},
        {"revisionName": "fraud-detector-v3", "percent": 25, "tag": "v3"},
        {"revisionName": "fraud-detector-v2", "percent": 0, "tag": "stable"},
        {"revisionName": "fraud-detector-v3", "percent": 0, "tag": "candidate"},
    ]
    (volume,) = template["spec"]["volumes"]
    assert volume["secret"]["secretName"] == "launchbay-trusted-keys"  # no ConfigMaps on Cloud Run


def test_the_plain_knative_rendering_is_what_cloud_run_would_refuse() -> None:
    """Why the dialect exists: the Knative Service a cluster takes sets fields Cloud Run rejects."""
    discovery = _discovery()
    svc = knative_service(cloud_run_config(), "3", CANARY)
    unsupported = _unsupported(svc, "Service", discovery["schemas"])
    assert "spec.template.spec.containers[0].securityContext" in unsupported
    assert any(v.get("configMap") for v in svc["spec"]["template"]["spec"]["volumes"])
    annotations = set(svc["spec"]["template"]["metadata"]["annotations"])
    assert not annotations <= TEMPLATE_ANNOTATIONS  # min-scale, max-scale, the retention period
    strict = _json_schema(discovery, "Service")
    with pytest.raises(jsonschema.ValidationError, match="rollout"):  # an undefined field is refused
        jsonschema.validate({**svc, "spec": {**svc["spec"], "rollout": {}}}, strict)


def test_render_writes_the_cloud_run_service_and_names_a_missing_project(tmp_path: Path) -> None:
    config = tmp_path / "launchbay.yaml"
    doc = {
        "model": {"name": "fraud-detector", "train": "pkg.mod:train"},
        "data": {"path": "d.csv", "features": {"x": {"type": "float"}}},
        "rollout": {"target": "knative", "shadow": None},
    }
    config.write_text(yaml.safe_dump(doc))
    pushed = f"ghcr.io/launchbay/fraud-detector@sha256:{'3' * 64}"
    argv = ["render", "-c", str(config), "--target", "cloud-run", "--version", "3"]
    missing = lb(*argv, "--image", pushed, cwd=tmp_path)
    assert missing.returncode == 2 and "cloud_run.project" in missing.stderr
    doc["cloud_run"] = {"project": "my-project"}
    config.write_text(yaml.safe_dump(doc))
    res = lb(*argv, "--image", pushed, cwd=tmp_path)
    assert res.returncode == 0, res.output
    rendered = yaml.safe_load(res.stdout)
    assert rendered["metadata"]["namespace"] == "my-project" and rendered["kind"] == "Service"
    assert rendered["spec"]["template"]["spec"]["containers"][0]["image"] == pushed  # by digest
    # Never a tag: without a digest given or recorded, the render is refused and says how to record one.
    res = lb(*argv, cwd=tmp_path)
    assert res.returncode == 2 and "launchbay record-image fraud-detector@3" in res.stderr, res.stderr
    res = lb(*argv, "--image", "ghcr.io/launchbay/fraud-detector:3", cwd=tmp_path)
    assert res.returncode == 2 and "not a tag" in res.stderr, res.stderr
