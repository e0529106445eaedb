"""Validate rendered cluster objects against the upstream schemas before anything is applied.

Core kinds (Deployment, Service, HorizontalPodAutoscaler, ...) go through `kubernetes-validate`
(the official OpenAPI schemas, strict: unknown fields are errors). `HTTPRoute` and Knative
`Service` are checked against their CRDs' `openAPIV3Schema` (vendored in rollout/schemas/) with
jsonschema; CEL rules (`x-kubernetes-validations`) are not evaluated -- an API server would.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
KUBERNETES_VERSION = "1.33.0"
"""The Kubernetes version core kinds are validated for."""

_CRDS = {
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): ("gateway.networking.k8s.io_httproutes.yaml", "v1"),
    ("serving.knative.dev/v1", "Service"): ("serving.knative.dev_services.yaml", "v1"),
    # launchbay's own (charts/launchbay/crds/ links to it): CEL rules are the API server's to check.
    ("launchbay.io/v1alpha1", "Model"): ("launchbay.io_models.yaml", "v1alpha1"),
}


class InvalidObject(ValueError):
    """A rendered object its schema refuses; the message names the object and the field."""


@functools.cache
def _crd_schema(file: str, version: str) -> dict[str, Any]:
    crd = yaml.safe_load((SCHEMAS / file).read_text())
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            schema: dict[str, Any] = v["schema"]["openAPIV3Schema"]
            return schema
    raise KeyError(f"{file} has no version {version}")


def problems(obj: dict[str, Any]) -> list[str]:
    """Every schema violation of one object (empty when it is valid)."""
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key in _CRDS:
        import jsonschema

        validator = jsonschema.Draft7Validator(_crd_schema(*_CRDS[key]))
        return [
            f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
            for e in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
        ]
    import kubernetes_validate
    from kubernetes_validate.utils import InvalidSchemaError, SchemaNotFoundError, ValidationError

    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except ValidationError as exc:
        return [f"{'.'.join(str(p) for p in exc.path) or '(root)'}: {exc.message}"]
    except (SchemaNotFoundError, InvalidSchemaError) as exc:
        return [f"no schema to check {key[1]} {key[0]}: {exc}"]
    return []


def check(objects: list[dict[str, Any]]) -> None:
    """Raise InvalidObject naming every invalid object and field."""
    found = []
    for obj in objects:
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        found += [f"{name}: {p}" for p in problems(obj)]
    if found:
        raise InvalidObject("rendered objects fail their schemas:\n  " + "\n  ".join(found))
