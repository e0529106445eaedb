"""The one place a target is chosen by name: `rollout.target` in launchbay.yaml.

Implementations are imported only when chosen, so the local target never loads the Kubernetes
client and a cluster controller never loads the local gateway.
"""

from __future__ import annotations

from launchbay.config import LaunchbayConfig
from launchbay.errors import ConfigError, EnvironmentProblem, UsageError
from launchbay.home import Home
from launchbay.rollout.targets.base import Notify, Target
from launchbay.rollout.targets.images import ImageOf

TARGETS = ("local", "kubernetes", "knative", "function")
"""The names `rollout.target` accepts."""


def make_target(
    cfg: LaunchbayConfig, home: Home, notify: Notify | None = None, image_of: ImageOf | None = None
) -> Target:
    """The configured target, ready to use; `notify` hears what it does on its own (the local
    target restarting its gateway); `image_of` gives a cluster target each version's image (the
    recorded digest; default: the tag `kubernetes.image` names).

    Raises:
        ConfigError: an unknown target name.
        UsageError: a cluster target without the cluster's Prometheus (`rollout.prometheus_url`).
        EnvironmentProblem: no usable Kubernetes configuration for a cluster target.
    """
    name = cfg.rollout.target
    if name == "local":
        from launchbay.rollout.local.target import LocalTarget

        return LocalTarget(cfg, home, notify=notify)
    if name not in TARGETS:
        raise ConfigError(f"rollout.target: unknown target {name!r}; expected one of {', '.join(TARGETS)}")
    if not cfg.rollout.prometheus_url:
        raise UsageError(
            f"rollout.target {name} needs rollout.prometheus_url: the cluster's Prometheus "
            "(launchbay starts one only for the local target)"
        )
    if name == "function":
        return _function(cfg, home)
    from launchbay.rollout.targets.kube_api import Api, api_client

    api = Api(api_client(cfg))
    if name == "kubernetes":
        from launchbay.rollout.targets.kubernetes import KubernetesTarget

        return KubernetesTarget(cfg, api, image_of)
    from launchbay.rollout.targets.knative import KnativeTarget

    return KnativeTarget(cfg, api, image_of)


def _function(cfg: LaunchbayConfig, home: Home) -> Target:
    """AWS Lambda through boto3 (the `aws` extra), packages built from the verified Bento."""
    import os
    import tempfile
    from pathlib import Path

    try:
        import boto3
    except ImportError:
        raise EnvironmentProblem(
            "rollout.target function needs boto3: pip install 'launchbay[aws]'"
        ) from None
    from launchbay.checks.keys import trusted_keys
    from launchbay.rollout.targets.function import FunctionTarget
    from launchbay.serving.deploy import verified_bento
    from launchbay.serving.function_package import lambda_zip_bytes

    region = cfg.function.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise UsageError("rollout.target function needs function.region (or $AWS_REGION)")
    client = boto3.client("lambda", region_name=region, endpoint_url=cfg.function.endpoint_url)

    def package(model: str, version: str) -> bytes:
        b = verified_bento(cfg, home, f"{model}@{version}", doing="deploy")
        with tempfile.TemporaryDirectory(prefix="launchbay-lambda-") as tmp:
            return lambda_zip_bytes(b.src, b.signed, Path(tmp), f"{model}-v{version}")

    pems = "".join(k.read_text() for k in trusted_keys(cfg, home) if k.exists())
    return FunctionTarget(cfg, client, package, pems)
