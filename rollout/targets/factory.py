"""The one place a target is chosen by name: `rollout.target` in launchbay.yaml.

Implementations are imported only when chosen, so the local target never loads the Kubernetes
client and a cluster controller never loads the local gateway.
"""

from __future__ import annotations

from launchbay.config import LaunchbayConfig
from launchbay.errors import ConfigError, UsageError
from launchbay.home import Home
from launchbay.rollout.targets.base import Notify, Target

TARGETS = ("local", "kubernetes", "knative")
"""The names `rollout.target` accepts."""


def make_target(cfg: LaunchbayConfig, home: Home, notify: Notify | None = None) -> Target:
    """The configured target, ready to use; `notify` hears what it does on its own (the local
    target restarting its gateway).

    Raises:
        ConfigError: an unknown target name.
        UsageError: a cluster target without the cluster's Prometheus (`rollout.prometheus_url`).
        EnvironmentProblem: no usable Kubernetes configuration for a cluster target.
    """
    name = cfg.rollout.target
    if name == "local":
        from launchbay.rollout.targets.local import LocalTarget

        return LocalTarget(cfg, home, notify=notify)
    if name not in TARGETS:
        raise ConfigError(f"rollout.target: unknown target {name!r}; expected one of {', '.join(TARGETS)}")
    if not cfg.rollout.prometheus_url:
        raise UsageError(
            f"rollout.target {name} needs rollout.prometheus_url: the cluster's Prometheus "
            "(launchbay starts one only for the local target)"
        )
    from launchbay.rollout.targets.kube_api import Api, api_client

    api = Api(api_client(cfg))
    if name == "kubernetes":
        from launchbay.rollout.targets.kubernetes import KubernetesTarget

        return KubernetesTarget(cfg, api)
    from launchbay.rollout.targets.knative import KnativeTarget

    return KnativeTarget(cfg, api)
