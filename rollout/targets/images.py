"""Which image a version runs in a cluster: the digest recorded for it, never a tag that can move.

The build (CI, `launchbay package --image` + `docker build/push`) records what it pushed on the
model version (`launchbay record-image MODEL@VERSION REPO@sha256:...`, MLflow tag
`launchbay.image`); the Kubernetes and Knative targets deploy that reference. With
`kubernetes.require_digest` (the default) a version without a recorded digest is not released: a
tag can be re-pushed between the analysis and the promotion, a digest cannot.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from launchbay.config import LaunchbayConfig
from launchbay.errors import UsageError
from launchbay.registry import ModelRef, Registry
from launchbay.rollout.targets.manifests import image as tagged

IMAGE_TAG = "launchbay.image"
"""The model version's tag holding its serving image, `REPOSITORY@sha256:<64 hex>`."""
RECORDED_BY_TAG = "launchbay.image_recorded_by"
CLUSTER_TARGETS = ("kubernetes", "knative")

ImageOf = Callable[[str, str], str]
"""(model, version) -> the image reference that version's pods run."""

_DIGEST_REF = re.compile(r"^(?P<repo>[a-z0-9][a-z0-9._\-/:]*[a-z0-9])@sha256:[0-9a-f]{64}$")


def is_digest(ref: str) -> bool:
    """`ref` names an image by digest (`REPOSITORY@sha256:<64 hex>`)."""
    return _DIGEST_REF.match(ref.strip()) is not None


def repository(ref: str) -> str:
    """`ghcr.io/org/m:v3` or `ghcr.io/org/m@sha256:...` -> `ghcr.io/org/m` (a registry port stays)."""
    ref = ref.split("@", 1)[0]
    head, _, last = ref.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def checked(cfg: LaunchbayConfig, version: str, ref: str) -> str:
    """`ref` if it is a digest reference in the repository `kubernetes.image` names.

    Raises:
        UsageError: not `REPOSITORY@sha256:<64 hex>`, or another repository.
    """
    ref = ref.strip()
    match = _DIGEST_REF.match(ref)
    if match is None:
        raise UsageError(
            f"{ref!r}: expected REPOSITORY@sha256:<64 hex digits> (what `docker push` or "
            "`docker buildx build --push` prints), not a tag"
        )
    expected = repository(tagged(cfg, version))
    if match["repo"] != expected:
        raise UsageError(
            f"{ref!r} is in repository {match['repo']}, but kubernetes.image puts version {version} "
            f"in {expected}; push it there or change kubernetes.image"
        )
    return ref


def recorded(registry: Registry, model: str, version: str) -> str | None:
    """The digest reference recorded for a version, if any."""
    return registry.resolve(ModelRef(model, str(version))).tags.get(IMAGE_TAG) or None


def record(registry: Registry, cfg: LaunchbayConfig, model: str, version: str, ref: str, who: str) -> str:
    """Record the pushed image of a version (checked first); return it."""
    ref = checked(cfg, version, ref)
    registry.tag(model, str(version), IMAGE_TAG, ref)
    registry.tag(model, str(version), RECORDED_BY_TAG, who)
    return ref


def _missing(cfg: LaunchbayConfig, model: str, version: str) -> UsageError:
    return UsageError(
        f"{model} version {version} has no serving image recorded: build it (`launchbay package "
        f"{model}@{version} --image`, then `docker build` and push to {repository(tagged(cfg, version))}) "
        f"and record the digest (`launchbay record-image {model}@{version} REPOSITORY@sha256:...`); "
        "or set kubernetes.require_digest: false to deploy the tag"
    )


def require(cfg: LaunchbayConfig, registry: Registry, model: str, version: str) -> str:
    """The image a release of `version` runs.

    Raises:
        UsageError: none recorded while `kubernetes.require_digest` is on (says how to record it).
    """
    found = recorded(registry, model, version)
    if found:
        return found
    if cfg.kubernetes.require_digest:
        raise _missing(cfg, model, version)
    return tagged(cfg, version)


def wait(
    cfg: LaunchbayConfig,
    registry: Registry,
    model: str,
    version: str,
    timeout: float,
    say: Callable[[str], None] = print,
    poll: float = 10.0,
) -> str:
    """`require`, waiting up to `timeout` seconds for the build to record the digest (the workflow's
    release step runs while CI builds the image of the version the workflow just packaged)."""
    deadline = time.monotonic() + timeout
    announced = False
    while True:
        try:
            return require(cfg, registry, model, version)
        except UsageError as exc:
            if time.monotonic() + poll > deadline:
                raise UsageError(f"waited {timeout:g} s: {exc}") from None
            if not announced:
                say(f"waiting up to {timeout:g} s for the serving image of {model} v{version} to be recorded")
                announced = True
            time.sleep(poll)


def resolver(cfg: LaunchbayConfig, registry: Registry) -> ImageOf:
    """What a cluster target asks for each version's image: `require` against the registry."""
    return lambda model, version: require(cfg, registry, model, version)
