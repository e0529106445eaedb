# syntax=docker/dockerfile:1
# The pipeline image (argo.image): launchbay and this model repository. The workflow's steps and
# Build it from the directory holding launchbay.yaml:
#   docker build -f ../../infra/base/images/pipeline.Dockerfile --build-arg LAUNCHBAY_PACKAGE=... -t ghcr.io/launchbay/launchbay@sha256:0000000000000000000000000000000000000000000000000000000000000000 .
FROM python:3.11-slim-bookworm
# A requirement (pinned by default), or a wheel's path inside the build context.
ARG LAUNCHBAY_PACKAGE=launchbay==0.1.0
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /project
COPY . .
# Then the model's own libraries, when the repository lists them.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir "${LAUNCHBAY_PACKAGE}" \
 && if [ -f requirements.txt ]; then pip install --no-cache-dir --requirement requirements.txt; fi
USER 10001:10001
