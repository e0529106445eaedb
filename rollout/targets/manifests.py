"""The objects a cluster target applies, as plain dicts: one function per kind, no client needed.

Kubernetes target, per version: a `Deployment` (probes on the service's health endpoints,
requests/limits, non-root, read-only root filesystem, no privilege escalation), a `Service` and a
`HorizontalPodAutoscaler`; one `HTTPRoute` per model whose weighted `backendRefs` are the canary
split and whose `RequestMirror` filter is the shadow. Knative target: one `Service` per model,
a revision per version, traffic percentages and tags per version (no mirroring in Knative).

Names are DNS labels derived from the model name (validated at config load) and the version.
"""

from __future__ import annotations

import re
from typing import Any

from launchbay.config import LaunchbayConfig
from launchbay.rollout.targets.base import Routes
from launchbay.serving import answer_log

PORT = 3000
"""The port BentoML serves on inside the container."""
RETENTION = "autoscaling.knative.dev/scale-to-zero-pod-retention-period"
MANAGED_BY = {"app.kubernetes.io/managed-by": "launchbay"}
KEYS_DIR = "/etc/launchbay/keys"
"""Where every launchbay pod (model, controller, workflow step) finds the trusted public keys."""


def trusted_key_names(cfg: LaunchbayConfig) -> list[str]:
    """The trusted-keys ConfigMap's keys: one file per configured trusted key (at least one)."""
    n = max(1, len(cfg.signing.trusted_keys))
    return ["signing-key.pub", *(f"signing-key-{i}.pub" for i in range(2, n + 1))]


def trusted_keys_env(cfg: LaunchbayConfig) -> dict[str, str]:
    """`LAUNCHBAY_TRUSTED_KEYS` for a pod that mounts the trusted-keys ConfigMap at KEYS_DIR."""
    files = ":".join(f"{KEYS_DIR}/{n}" for n in trusted_key_names(cfg))
    return {"name": "LAUNCHBAY_TRUSTED_KEYS", "value": files}


def unit_name(model: str, version: str) -> str:
    """The name of a version's Deployment/Service/HPA (and Knative revision)."""
    return f"{model}-v{version}"


def labels(model: str, version: str | None = None) -> dict[str, str]:
    """Labels launchbay puts on what it creates (selectors use the name and version only)."""
    out = {"app.kubernetes.io/name": model, **MANAGED_BY}
    if version is not None:
        out["launchbay.io/version"] = str(version)
    return out


def image(cfg: LaunchbayConfig, version: str) -> str:
    """The serving image of a version (`kubernetes.image`, `{model}` and `{version}` filled in)."""
    return cfg.kubernetes.image.format(model=cfg.model.name, version=version)


def _container(cfg: LaunchbayConfig, version: str, image_ref: str | None = None) -> dict[str, Any]:
    k = cfg.kubernetes
    probe = {"httpGet": {"path": "/readyz", "port": PORT}, "periodSeconds": 2, "failureThreshold": 3}
    return {
        "name": "model",
        "image": image_ref or image(cfg, version),
        "ports": [{"name": "http", "containerPort": PORT}],
        "env": [
            trusted_keys_env(cfg),
            {"name": "BENTOML_HOME", "value": "/tmp/bentoml"},  # writable: the root fs is read-only
            *_answer_log(cfg),
        ],
        "readinessProbe": probe,
        "livenessProbe": {**probe, "httpGet": {"path": "/livez", "port": PORT}, "initialDelaySeconds": 10},
        "startupProbe": {**probe, "httpGet": {"path": "/livez", "port": PORT}, "failureThreshold": 60},
        "resources": {
            "requests": {"cpu": k.cpu_request, "memory": k.memory_request},
            "limits": {"cpu": k.cpu_limit, "memory": k.memory_limit},
        },
        "securityContext": restricted(),
        "volumeMounts": mounts(),
    }


ANSWER_LOG = 20_000
"""Answers each pod keeps for the shadow join (a few minutes of shadow at a hundred requests/s)."""


def _answer_log(cfg: LaunchbayConfig) -> list[dict[str, str]]:
    """With shadow on Kubernetes, each model server keeps its answers by request id (joined by the
    controller, row by row: `launchbay.rollout.metrics.join`); with a replay before shadow, a
    sample of the requests it answers (replayed to the next candidate)."""
    if cfg.rollout.target != "kubernetes":
        return []
    env = []
    if cfg.monitor is not None:  # the monitor's capture (it keeps enough for the shadow join too)
        env += [{"name": k, "value": v} for k, v in answer_log.monitored_env(cfg).items()]
    elif cfg.rollout.shadow is not None:
        env.append({"name": "LAUNCHBAY_ANSWER_LOG", "value": str(ANSWER_LOG)})
    if (replay := cfg.rollout.preflight.replay) is not None:
        env += [
            {"name": "LAUNCHBAY_CAPTURE", "value": str(replay.capture)},
            {"name": "LAUNCHBAY_CAPTURE_DROP", "value": ",".join(replay.drop)},
            {"name": "LAUNCHBAY_CAPTURE_HASH", "value": ",".join(replay.hash)},
        ]
    return env


UID = 10001
"""The user every launchbay container runs as."""


def restricted(uid: int = UID) -> dict[str, Any]:
    """The container security context of everything launchbay runs (Pod Security "restricted")."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def mounts() -> list[dict[str, Any]]:
    """A writable /tmp (the root file system is read-only) and the trusted keys, read-only."""
    return [
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "trusted-keys", "mountPath": KEYS_DIR, "readOnly": True},
    ]


def _volumes(cfg: LaunchbayConfig) -> list[dict[str, Any]]:
    return [
        {"name": "tmp", "emptyDir": {}},
        {"name": "trusted-keys", "configMap": {"name": cfg.kubernetes.trusted_keys_configmap}},
    ]


def deployment(cfg: LaunchbayConfig, version: str, image_ref: str | None = None) -> dict[str, Any]:
    """One version's pods (`image_ref`: the recorded digest; default: the configured tag)."""
    model, k = cfg.model.name, cfg.kubernetes
    name = unit_name(model, version)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": k.namespace, "labels": labels(model, version)},
        "spec": {
            "replicas": k.min_replicas,
            "selector": {
                "matchLabels": {"app.kubernetes.io/name": model, "launchbay.io/version": str(version)}
            },
            "template": {
                "metadata": {"labels": labels(model, version)},
                "spec": {
                    "automountServiceAccountToken": False,
                    "containers": [_container(cfg, version, image_ref)],
                    "volumes": _volumes(cfg),
                },
            },
        },
    }


def service(cfg: LaunchbayConfig, version: str) -> dict[str, Any]:
    """The stable address of one version (what the HTTPRoute points at)."""
    model, k = cfg.model.name, cfg.kubernetes
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": unit_name(model, version),
            "namespace": k.namespace,
            "labels": labels(model, version),
        },
        "spec": {
            "selector": {"app.kubernetes.io/name": model, "launchbay.io/version": str(version)},
            "ports": [{"name": "http", "port": PORT, "targetPort": PORT, "protocol": "TCP"}],
        },
    }


def autoscaler(cfg: LaunchbayConfig, version: str) -> dict[str, Any]:
    """CPU-based autoscaling of one version."""
    model, k = cfg.model.name, cfg.kubernetes
    name = unit_name(model, version)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": k.namespace, "labels": labels(model, version)},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": k.min_replicas,
            "maxReplicas": k.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": k.target_cpu_percent},
                    },
                }
            ],
        },
    }


def version_objects(cfg: LaunchbayConfig, version: str, image_ref: str | None = None) -> list[dict[str, Any]]:
    """Everything one version needs on the Kubernetes target."""
    return [deployment(cfg, version, image_ref), service(cfg, version), autoscaler(cfg, version)]


def _ref(model: str, version: str, weight: int | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"kind": "Service", "name": unit_name(model, version), "port": PORT}
    if weight is not None:
        ref["weight"] = weight
    return ref


PIN_WORDS = {"stable": ("stable",), "candidate": ("candidate", "canary")}
"""The pin header's words per role (besides the version number, bare or with a `v`)."""


def _match(headers: list[dict[str, str]] | None = None) -> dict[str, Any]:
    match: dict[str, Any] = {"path": {"type": "PathPrefix", "value": "/"}}
    if headers:
        match["headers"] = headers
    return match


def _pin_rules(cfg: LaunchbayConfig, routes: Routes) -> list[dict[str, Any]]:
    """A rule per routed version answering the requests that pin it: a header match outranks the
    weighted rule's path-only match (Gateway API precedence), so testers reach a 0% candidate."""
    header, rules = cfg.rollout.routing.pin_header, []
    roles = [("stable", routes.stable), ("candidate", routes.canary)]
    for role, backend in roles:
        if header is None or backend is None:
            continue
        values = [*PIN_WORDS[role], backend.version, f"v{backend.version}"]
        matches = [_match([{"type": "Exact", "name": header, "value": v}]) for v in values]
        rules.append({"matches": matches, "backendRefs": [_ref(cfg.model.name, backend.version)]})
    return rules


def _cookie(cfg: LaunchbayConfig, version: str, candidate: str) -> dict[str, Any]:
    """A backendRef filter giving the user the sticky cookie of the version that answered."""
    name = cfg.rollout.routing.sticky_cookie
    value = f"{name}=v{version}.c{candidate}; Path=/; HttpOnly; SameSite=Lax"
    added = [{"name": "Set-Cookie", "value": value}]
    return {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"add": added}}


def _sticky_rules(cfg: LaunchbayConfig, routes: Routes) -> list[dict[str, Any]]:
    """`sticky: cookie`: a user carrying the cookie of this release's stable or candidate goes back
    to it (a RegularExpression header match on Cookie: implementation-specific in Gateway API, which
    Envoy Gateway, Istio and Contour support)."""
    if cfg.rollout.routing.sticky != "cookie" or routes.stable is None or routes.canary is None:
        return []
    name, candidate = cfg.rollout.routing.sticky_cookie, routes.canary.version
    rules = []
    for backend in (routes.stable, routes.canary):
        value = re.escape(f"v{backend.version}.c{candidate}")
        pattern = f"(^|.*;\\s*){re.escape(name)}={value}(;.*|$)"
        rules.append(
            {
                "matches": [_match([{"type": "RegularExpression", "name": "Cookie", "value": pattern}])],
                "backendRefs": [_ref(cfg.model.name, backend.version)],
            }
        )
    return rules


def http_route(cfg: LaunchbayConfig, routes: Routes) -> dict[str, Any]:
    """The model's HTTPRoute: weights for stable/canary, a RequestMirror filter for shadow; rules
    for pinned versions (rollout.routing.pin_header) and sticky users (cookie) before them.

    The weighted rule is the one matching on the path alone (`weighted_rule` finds it)."""
    model, k = cfg.model.name, cfg.kubernetes
    rule: dict[str, Any] = {"matches": [_match()], "backendRefs": []}
    sticky = cfg.rollout.routing.sticky == "cookie" and routes.canary is not None and routes.canary_weight > 0
    if routes.stable is not None:
        rule["backendRefs"].append(_ref(model, routes.stable.version, 100 - routes.canary_weight))
    if routes.canary is not None and routes.canary_weight > 0:
        rule["backendRefs"].append(_ref(model, routes.canary.version, routes.canary_weight))
    if sticky and routes.canary is not None:
        for ref in rule["backendRefs"]:
            version = ref["name"].removeprefix(f"{model}-v")
            ref["filters"] = [_cookie(cfg, version, routes.canary.version)]
    if routes.canary is not None and routes.mirror:
        rule["filters"] = [
            {"type": "RequestMirror", "requestMirror": {"backendRef": _ref(model, routes.canary.version)}}
        ]
    parent: dict[str, Any] = {"name": k.gateway_name}
    if k.gateway_namespace:
        parent["namespace"] = k.gateway_namespace
    rules = [rule, *_pin_rules(cfg, routes)]
    if sticky:
        rules += _sticky_rules(cfg, routes)
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": model, "namespace": k.namespace, "labels": labels(model)},
        "spec": {"parentRefs": [parent], "rules": rules},
    }


def weighted_rule(route: dict[str, Any]) -> dict[str, Any]:
    """The rule of a model's HTTPRoute that splits traffic by weight (its match is the path alone)."""
    for rule in route.get("spec", {}).get("rules") or []:
        if not any(m.get("headers") for m in rule.get("matches") or [{}]):
            return dict(rule)
    return {}


def knative_service(
    cfg: LaunchbayConfig, version: str, routes: Routes, image_ref: str | None = None
) -> dict[str, Any]:
    """The model's Knative Service: the newest revision is `version`; traffic split per `routes`.

    Cloud Run accepts the same object (`gcloud run services replace`).
    """
    model, k = cfg.model.name, cfg.kubernetes
    container = _container(cfg, version, image_ref)
    # Knative owns probes' ports and rejects a named port other than http1/h2c.
    container["ports"] = [{"name": "http1", "containerPort": PORT}]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        container[probe]["httpGet"].pop("port", None)
    container.pop("startupProbe")
    traffic = []
    if routes.stable is not None:
        traffic.append(
            {
                "revisionName": unit_name(model, routes.stable.version),
                "percent": 100 - routes.canary_weight,
                "tag": f"v{routes.stable.version}",
            }
        )
    if routes.canary is not None:
        traffic.append(
            {
                "revisionName": unit_name(model, routes.canary.version),
                "percent": routes.canary_weight,
                "tag": f"v{routes.canary.version}",
            }
        )
    # Pins by role: `Knative-Serving-Tag: candidate|stable` (tag-header-based-routing) or the
    # tag's own URL. No traffic of their own: the weights above are the split.
    for role, backend in (("stable", routes.stable), ("candidate", routes.canary)):
        if backend is not None:
            traffic.append({"revisionName": unit_name(model, backend.version), "percent": 0, "tag": role})
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": model, "namespace": k.namespace, "labels": labels(model)},
        "spec": {
            "template": {
                "metadata": {
                    "name": unit_name(model, version),
                    "labels": labels(model, version),
                    "annotations": {
                        "autoscaling.knative.dev/min-scale": str(k.knative_min_scale),
                        "autoscaling.knative.dev/max-scale": str(k.max_replicas),
                        RETENTION: k.scale_to_zero_retention,
                    },
                },
                "spec": {"containers": [container], "volumes": _volumes(cfg)},
            },
            "traffic": traffic,
        },
    }


CLOUD_RUN_LOCATION = "cloud.googleapis.com/location"


def _gcp_labels(model: str, version: str | None = None) -> dict[str, str]:
    """Cloud Run's labels are Google Cloud labels: lowercase keys without dots or slashes."""
    out = {"managed-by": "launchbay", "launchbay-model": model}
    if version is not None:
        out["launchbay-version"] = str(version)
    return out


def cloud_run_service(
    cfg: LaunchbayConfig, version: str, routes: Routes, image_ref: str | None = None
) -> dict[str, Any]:
    """The model's Knative Service as Cloud Run's Admin API v1 takes it (`gcloud run services
    replace`): the project as namespace, the region as a label, Google Cloud label keys, the
    camelCase scale annotations Cloud Run documents (`autoscaling.knative.dev/minScale`/`maxScale`;
    no scale-to-zero retention: Cloud Run scales to zero when min is 0), no container security
    context (Cloud Run sandboxes every instance), and the trusted key from Secret Manager (Cloud
    Run mounts no ConfigMaps). Traffic and tags are the Knative target's.

    Raises:
        ValueError: `cloud_run.project` is not set.
    """
    cr, k = cfg.cloud_run, cfg.kubernetes
    if not cr.project:
        raise ValueError("cloud_run.project: Cloud Run needs the project number or ID as the namespace")
    svc = knative_service(cfg, version, routes, image_ref)
    svc["metadata"] = {
        "name": cfg.model.name,
        "namespace": cr.project,
        "labels": {**_gcp_labels(cfg.model.name), CLOUD_RUN_LOCATION: cr.region},
    }
    template = svc["spec"]["template"]
    template["metadata"] = {
        "name": unit_name(cfg.model.name, version),
        "labels": _gcp_labels(cfg.model.name, version),
        "annotations": {
            "autoscaling.knative.dev/minScale": str(k.knative_min_scale),
            "autoscaling.knative.dev/maxScale": str(k.max_replicas),
        },
    }
    (container,) = template["spec"]["containers"]
    container.pop("securityContext", None)
    container["resources"] = {"limits": {"cpu": k.cpu_limit, "memory": k.memory_limit}}
    # The root filesystem is writable (in memory) on Cloud Run: no /tmp volume is needed.
    container["volumeMounts"] = [{"name": "trusted-keys", "mountPath": KEYS_DIR}]
    # One Secret Manager secret, one key file (its latest version).
    container["env"] = [
        e if e["name"] != "LAUNCHBAY_TRUSTED_KEYS" else {**e, "value": f"{KEYS_DIR}/signing-key.pub"}
        for e in container["env"]
    ]
    spec: dict[str, Any] = {
        "containerConcurrency": cr.container_concurrency,
        "containers": [container],
        "volumes": [
            {
                "name": "trusted-keys",
                "secret": {
                    "secretName": cr.trusted_keys_secret,
                    "items": [{"key": "latest", "path": "signing-key.pub"}],
                },
            }
        ],
    }
    if cr.service_account:
        spec["serviceAccountName"] = cr.service_account
    template["spec"] = spec
    return svc


def release_objects(
    cfg: LaunchbayConfig,
    target: str,
    version: str,
    stable: str | None = None,
    weight: int = 0,
    images: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """What a cluster target applies for `version` as canary at `weight`% next to `stable`
    (or, without `stable`, as the version serving all traffic); `images`: version -> the digest
    reference its pods run (without one, the configured tag)."""
    from launchbay.rollout.targets.base import Backend

    refs = images or {}

    def b(v: str) -> Backend:
        return Backend(version=v, url="")

    if stable is None:
        routes = Routes(stable=b(version))
    else:
        routes = Routes(stable=b(stable), canary=b(version), canary_weight=weight)
    if target == "knative":
        return [knative_service(cfg, version, routes, refs.get(version))]
    if target == "cloud-run":
        return [cloud_run_service(cfg, version, routes, refs.get(version))]
    objects = version_objects(cfg, version, refs.get(version))
    if stable is not None:
        objects = version_objects(cfg, stable, refs.get(stable)) + objects
    return [*objects, http_route(cfg, routes)]
