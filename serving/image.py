"""A version's serving image, made from its verified Bento: a Docker build context.

`launchbay package MODEL@VERSION --image` writes `<name>-image/`: the Bento's code (launchbay's
serving floors and the user's model code) and its signed model directory copied byte for byte,
the lean runtime's pinned requirements, and a Dockerfile that runs the lean runtime as a non-root
user on the port the Kubernetes and Knative manifests probe. Every start of the container verifies
`model/` against `$LAUNCHBAY_TRUSTED_KEYS` (the Deployment mounts the trusted-keys ConfigMap) and
exits 1 without listening if anything changed. No Docker engine is needed to write it; `docker
build` (or `buildah`, `kaniko`) builds it, and the digest it pushes is recorded on the version with
`launchbay record-image`, so releases deploy by digest, never by a tag that can move.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from launchbay.serving.function_package import Package, _code, _fresh, _mb, _pinned, _requirements

PORT = 3000
"""The port the lean runtime listens on in the container (the manifests' probes use it)."""
UID = 10001
"""The user the container runs as (the manifests' runAsUser)."""
HTTP = ("uvicorn", "uvloop", "httptools", "prometheus-client")
"""The lean runtime's HTTP server and its metrics, beside the model's requirements."""
BASE = "python:3.11-slim-bookworm"

DOCKERFILE = f"""# syntax=docker/dockerfile:1
# @@NAME@@: the serving image (launchbay's lean runtime), written by `launchbay package --image`.
# Build in this directory: docker build -t IMAGE:TAG . ; then record the pushed digest:
#   launchbay record-image @@MODEL@@@@@VERSION@@ IMAGE@sha256:...
FROM {BASE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /srv
COPY requirements.txt ./
RUN pip install --no-cache-dir --requirement requirements.txt
COPY code/ ./
COPY model/ ./model/
USER {UID}:{UID}
EXPOSE {PORT}
# The model is verified against $LAUNCHBAY_TRUSTED_KEYS before it is loaded; the pod provides them.
CMD ["python", "-m", "launchbay.serving.lean", "--host", "0.0.0.0", "--port", "{PORT}", \\
     "--model-dir", "model"]
"""

DOCKERIGNORE = "README.md\n**/__pycache__\n**/*.pyc\n"


def image_context(src: Path, signed: Path, out: Path, model: str, version: str) -> Package:
    """The serving image's build context: `out/<model>-v<version>-image/`.

    The Dockerfile is the one thing a build needs; `Package.archive` is that Dockerfile.
    """
    name = f"{model}-v{version}"
    root = _fresh(out / f"{name}-image")
    requirements, variant = _requirements(signed)
    requirements = [*requirements, *_pinned(HTTP)]
    _code(src, root / "code")
    shutil.copytree(signed, root / "model")
    (root / "requirements.txt").write_text("\n".join(requirements) + "\n")
    dockerfile = root / "Dockerfile"
    dockerfile.write_text(
        DOCKERFILE.replace("@@NAME@@", name).replace("@@MODEL@@", model).replace("@@VERSION@@", version)
    )
    (root / ".dockerignore").write_text(DOCKERIGNORE)
    (root / "README.md").write_text(_readme(name, model, version, variant))
    sizes = {"context": _mb(root), "model": _mb(root / "model"), "code": _mb(root / "code")}
    return Package("image", root, dockerfile, variant, sizes, requirements)


def _readme(name: str, model: str, version: str, variant: str) -> str:
    return f"""# {name}: the serving image's build context

Written by `launchbay package {model}@{version} --image` from the verified Bento. The model
({variant}) in `model/` is signed; the container verifies it against `$LAUNCHBAY_TRUSTED_KEYS`
before loading and exits 1 naming what changed otherwise.

    docker build -t REGISTRY/{model}:v{version} .
    docker push REGISTRY/{model}:v{version}        # prints the digest
    launchbay record-image {model}@{version} REGISTRY/{model}@sha256:DIGEST

Releases of a cluster target deploy the recorded digest (`kubernetes.require_digest`, default on).
"""
