"""Writes infra/base: the example model's part of a cluster where launchbay's chart is installed.

The example runs on the local target; its cluster directory is rendered from the same config with
the cluster settings a team would set (target, Prometheus, the pipeline image by digest), and the
committed example public keys (signing and approvers'). tests/unit/infra checks infra/base is what
this writes.

    .venv/bin/python scripts/infra_base.py
"""

from __future__ import annotations

import shutil
from pathlib import Path

from launchbay.config import LaunchbayConfig, load_config

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "infra" / "base"
EXAMPLE_KEY = ROOT / "infra" / "example-signing-key.pub"
EXAMPLE_APPROVERS = ROOT / "infra" / "example-approvers"
"""Committed public keys standing in for the release managers' (the example's own are made by
`make example`, so a fresh checkout has none)."""
PIPELINE_IMAGE = "ghcr.io/launchbay/launchbay@sha256:" + "0" * 64
"""A placeholder digest: CI renders with the digest its push printed (`--image`)."""


def config() -> LaunchbayConfig:
    cfg = load_config(ROOT / "examples" / "fraud-detector" / "launchbay.yaml")
    rollout = cfg.rollout.model_copy(update={"target": "kubernetes", "prometheus_url": "http://prometheus:9090"})
    approvers = {who: str(EXAMPLE_APPROVERS / f"{who}.pub") for who in cfg.rollout.approval.approvers}
    approval = cfg.rollout.approval.model_copy(update={"approvers": approvers})
    rollout = rollout.model_copy(update={"approval": approval})
    signing = cfg.signing.model_copy(update={"trusted_keys": [str(EXAMPLE_KEY)]})
    argo = cfg.argo.model_copy(update={"image": PIPELINE_IMAGE})
    return cfg.model_copy(update={"rollout": rollout, "signing": signing, "argo": argo})


def main() -> None:
    from launchbay.pipelines import cluster

    shutil.rmtree(BASE, ignore_errors=True)
    cluster.write(config(), BASE, [EXAMPLE_KEY], git_commit="")
    print(f"wrote {BASE}")


if __name__ == "__main__":
    main()
