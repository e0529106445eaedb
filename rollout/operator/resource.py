"""A team's `Model` object, turned into a launchbay config; a release, turned into its status.

The object is the team's data (launchbay.yaml, trusted keys, approvers' keys) and nothing in it
can reach beyond the team's namespace: the model's objects live where the Model lives, its
trusted-keys ConfigMap is named after it, and the ledger, the Kubernetes credentials and (unless
the team names its own) the Prometheus are the installation's. The status says what the ledger
says -- it is a mirror for `kubectl get`, never read back as truth.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from launchbay.config import LaunchbayConfig
from launchbay.errors import ConfigError
from launchbay.rollout.engine.phases import Phase
from launchbay.rollout.engine.release import Release
from launchbay.rollout.targets.images import CLUSTER_TARGETS

GROUP, VERSION, KIND, PLURAL = "launchbay.io", "v1alpha1", "Model", "models"
API_VERSION = f"{GROUP}/{VERSION}"


@dataclass(frozen=True)
class Settings:
    """What the installation decides for every team (the controller's own flags and environment)."""

    workdir: Path
    kubeconfig: str | None = None
    context: str | None = None
    prometheus_url: str | None = None
    prometheus_ca_file: str | None = None


@dataclass(frozen=True)
class Onboarded:
    """A Model as the controller drives it."""

    namespace: str
    name: str
    uid: str
    generation: int
    config: LaunchbayConfig
    keys: dict[str, str]
    """The trusted-keys ConfigMap's data: file name -> PEM (mounted by the model's pods)."""
    requested: tuple[str, str] | None
    """(version, author) of `spec.release`, if the object asks for one."""
    digest: str
    """Of everything the config was built from: a changed spec rebuilds the model's parts."""

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name


def _refuse(obj: dict[str, Any], what: str) -> ConfigError:
    meta = obj.get("metadata", {})
    return ConfigError(f"Model {meta.get('namespace')}/{meta.get('name')}: {what}")


def onboard(obj: dict[str, Any], settings: Settings) -> Onboarded:
    """The config of a Model object; its keys written under `settings.workdir`.

    Raises:
        ConfigError: the spec is not a config launchbay can run in this namespace (the message
            names the field).
    """
    meta, spec = obj.get("metadata", {}), obj.get("spec") or {}
    ns, name = meta["namespace"], meta["name"]
    doc = json.loads(json.dumps(spec.get("config") or {}))  # a deep copy we may change
    model = doc.setdefault("model", {})
    if model.get("name", name) != name:
        raise _refuse(obj, f"spec.config.model.name is {model['name']!r}; a Model's name is its model's")
    model["name"] = name
    rollout = doc.setdefault("rollout", {})
    target = rollout.setdefault("target", "kubernetes")
    if target not in CLUSTER_TARGETS:
        raise _refuse(obj, f"spec.config.rollout.target {target!r}: a cluster runs kubernetes or knative")
    if rollout.get("ledger_url"):
        raise _refuse(obj, "spec.config.rollout.ledger_url: the installation's ledger is every team's")
    kube = doc.setdefault("kubernetes", {})
    if kube.get("namespace", ns) != ns:
        raise _refuse(obj, f"spec.config.kubernetes.namespace is {kube['namespace']!r}; a team's "
                           f"models live in the Model's namespace ({ns})")  # fmt: skip
    for field in ("kubeconfig", "context"):
        if kube.get(field):
            raise _refuse(obj, f"spec.config.kubernetes.{field}: the controller uses its own credentials")
    kube.update(namespace=ns, kubeconfig=settings.kubeconfig, context=settings.context,
                trusted_keys_configmap=f"{name}-trusted-keys")  # fmt: skip
    if not rollout.get("prometheus_url"):
        rollout["prometheus_url"] = settings.prometheus_url
        rollout["prometheus_ca_file"] = settings.prometheus_ca_file
    here = settings.workdir / ns / name
    keys = {f"signing-key{'' if i == 1 else f'-{i}'}.pub": pem for i, pem in
            enumerate(spec.get("trustedKeys") or [], start=1)}  # fmt: skip
    if not keys:
        raise _refuse(obj, "spec.trustedKeys: at least one public key")
    doc.setdefault("signing", {})["trusted_keys"] = [
        str(_write(here / "keys" / n, pem)) for n, pem in keys.items()
    ]
    approvers = spec.get("approvers") or {}
    if approvers:
        approval = rollout.setdefault("approval", {})
        approval["approvers"] = {who: str(_write(here / "approvers" / f"{_safe(who)}.pub", pem))
                                 for who, pem in approvers.items()}  # fmt: skip
    try:
        cfg = LaunchbayConfig.model_validate(doc)
    except ValueError as exc:
        raise _refuse(obj, f"spec.config: {_first_error(exc)}") from None
    source = _write(here / "launchbay.yaml", yaml.safe_dump(doc, sort_keys=False))
    cfg = cfg.model_copy(update={"source": source})
    release = spec.get("release") or None
    requested = (str(release["version"]), str(release.get("author") or "gitops")) if release else None
    digest = hashlib.sha256(json.dumps([spec, settings.__dict__], sort_keys=True, default=str).encode())
    return Onboarded(ns, name, meta.get("uid", ""), int(meta.get("generation") or 0), cfg, keys,
                     requested, digest.hexdigest())  # fmt: skip


def _safe(who: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in who) or "_"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
    return str(exc)


WAITING = {
    Phase.PENDING: "the signature check of the version",
    Phase.VERIFIED: "the version's pods to be ready",
    Phase.AWAITING_APPROVAL: "a release manager's approval",
}


def status(release: Release | None, generation: int, problem: str | None = None,
           waiting: str | None = None, monitor: str | None = None) -> dict[str, Any]:  # fmt: skip
    """The Model's status for its newest release (`problem`: why the controller cannot drive it;
    `monitor`: what the production monitor says)."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    out: dict[str, Any] = {"observedGeneration": generation, "updatedAt": now}
    if monitor:
        out["monitor"] = monitor
    if release is not None:
        live_step = release.step is not None and release.phase.live
        split = release.plan.traffic(release.step_index) if live_step else None
        out.update(
            release=release.name,
            version=release.version,
            phase=release.phase.value,
            step=f"{min(release.step_index + 1, len(release.plan))}/{len(release.plan)}",
            canaryWeight=split.canary_weight if split is not None else 0,
            mirror=bool(split.mirror) if split is not None else False,
        )
        if release.stable_version:
            out["stable"] = release.stable_version
        if release.phase.live or release.phase is Phase.PENDING:
            out["waitingFor"] = waiting or WAITING.get(release.phase, "the analysis of the current step")
    ready = problem is None
    out["conditions"] = [{
        "type": "Ready", "status": "True" if ready else "False",
        "reason": "Driven" if ready else "CannotDrive", "message": problem or "the controller drives it",
        "lastTransitionTime": now,
    }]  # fmt: skip
    if problem is not None:
        out["message"] = problem
    return out


def model_object(cfg: LaunchbayConfig, trusted_keys: list[Path]) -> dict[str, Any]:
    """The Model object of a project (`launchbay render --target model`): its effective config
    (what differs from the defaults), the trusted public keys' and the approvers' PEM text. What
    the installation decides (namespace, credentials, ledger) is left out; the team applies it in
    its own namespace.

    Raises:
        ConfigError: the config's target is not a cluster's.
    """
    if cfg.rollout.target not in CLUSTER_TARGETS:
        raise ConfigError(
            f"rollout.target is {cfg.rollout.target!r}: a cluster runs kubernetes or knative -- set "
            "rollout.target (and rollout.prometheus_url, unless the installation provides one)"
        )
    doc: dict[str, Any] = cfg.model_dump(mode="json", exclude_defaults=True, exclude={"source"})
    kube = doc.get("kubernetes") or {}
    for field in ("namespace", "kubeconfig", "context", "trusted_keys_configmap"):
        kube.pop(field, None)
    signing = doc.get("signing") or {}
    signing.pop("trusted_keys", None)
    rollout = doc.setdefault("rollout", {})
    rollout.pop("ledger_url", None)
    rollout["target"] = cfg.rollout.target  # said even when it is the default: the CRD checks it
    (rollout.get("approval") or {}).pop("approvers", None)
    for section in ("kubernetes", "signing"):
        if not doc.get(section):
            doc.pop(section, None)
    approvers = {who: cfg.public_key(key).decode() for who, key in cfg.rollout.approval.approvers.items()}
    spec: dict[str, Any] = {"config": doc, "trustedKeys": [k.read_text() for k in trusted_keys]}
    if approvers:
        spec["approvers"] = approvers
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": cfg.model.name}, "spec": spec}
