"""The preparation of a local server: verified twice before it is started, and once more inside it.

Nothing is served that has not been verified twice: the registry's copy (what the pipeline signed,
`checks.registered`) and the Bento's copy (what the server will load), each against the trusted
keys. The server checks a third time when it starts.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from launchbay import procs
from launchbay.checks.keys import trusted_keys
from launchbay.checks.registered import verify_registered
from launchbay.checks.signature import verify
from launchbay.config import LaunchbayConfig
from launchbay.errors import PipelineFailed
from launchbay.home import Home
from launchbay.registry import MlflowRegistry
from launchbay.serving import answer_log
from launchbay.serving import package as bento

SERVER_ENV = (
    "LAUNCHBAY_MODEL",
    "LAUNCHBAY_TRUSTED_KEYS",
    "LAUNCHBAY_MAX_BATCH",
    "LAUNCHBAY_BATCH_WAIT_MS",
    "LAUNCHBAY_WORKERS",
    "LAUNCHBAY_STOP_SERVER_ON_REFUSAL",
    "BENTOML_HOME",
    "BENTOML_DO_NOT_TRACK",
    "BENTOML_CONFIG",
    "BENTOML_CONFIG_OPTIONS",
)
"""What a model server is given of the environment besides `procs.BASE_ENV`: never the signing
key, the ledger's URL or the registry's credentials (it serves from its Bento)."""


def server_env(env: dict[str, str]) -> dict[str, str]:
    """A model server's environment: what it needs of `env`, nothing else."""
    return procs.scrubbed_env(env, SERVER_ENV)


Runtime = Literal["bentoml", "lean"]


@dataclass(frozen=True)
class ServerCommand:
    """How to start one version's server: argv, environment and working directory."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    runtime: Runtime


@dataclass(frozen=True)
class VerifiedBento:
    """A registered version's Bento, both copies of its model verified against the trusted keys."""

    model: str
    version: str
    tag: str
    src: Path
    """The Bento's code: launchbay's serving floors and the user's model code."""
    signed: Path
    """The Bento's copy of the signed model directory."""
    keys: list[Path]


def verified_bento(cfg: LaunchbayConfig, home: Home, model_ref: str, doing: str = "serve") -> VerifiedBento:
    """Verify the registry's copy, make sure a Bento exists (building it from that copy), verify the
    Bento's copy; what serving and every package is made from.

    Raises:
        PipelineFailed: the registry's or the Bento's copy of the model does not verify.
    """
    registry = MlflowRegistry(cfg, home)
    checked = verify_registered(cfg, home, model_ref, registry)
    if not checked.verdict.ok:
        raise PipelineFailed(f"refusing to {doing} {model_ref}: {checked.message}")
    name, version = checked.model, checked.version
    keys = trusted_keys(cfg, home)
    bento.use_store(home)
    import bentoml
    from bentoml.exceptions import NotFound

    tag = bento.tag(name, version)
    try:
        bentoml.bentos.get(tag)
        stored = bento.signed_dir(bentoml.models.get(tag).path)
    except NotFound:
        with tempfile.TemporaryDirectory(prefix="launchbay-package-") as tmp:
            model_dir = registry.download(registry.get(name, version), Path(tmp) / "model")
            bento.build_for(cfg, model_dir, version)
        stored = bento.signed_dir(bentoml.models.get(tag).path)
    result = verify(stored, keys)
    if not result.verdict.ok:
        raise PipelineFailed(
            f"refusing to {doing} {model_ref}: the packaged copy in {stored} fails: {result.message}"
        )
    src = Path(bentoml.bentos.get(tag).path) / "src"
    return VerifiedBento(name, str(version), tag, src, stored, keys)


def prepare_serve(
    cfg: LaunchbayConfig,
    home: Home,
    model_ref: str,
    host: str,
    port: int,
    runtime: Runtime | None = None,
) -> ServerCommand:
    """Verify, make sure a verified Bento exists, and return how to start its server.

    Both runtimes run from the Bento: `bentoml serve TAG` (the Bento's BentoML service) or the
    lean runtime (`python -m launchbay.serving.lean`) started in the Bento's `src/`, so the
    serving code and the user's model code are the Bento's, never the checkout's.

    Args:
        runtime: `bentoml` or `lean`; default: what `serving.runtime` resolves to.

    Raises:
        PipelineFailed: the registry's or the Bento's copy of the model does not verify.
    """
    b = verified_bento(cfg, home, model_ref)
    env = {
        **server_env(dict(os.environ)),
        "BENTOML_HOME": str(bento.bentoml_home(home)),
        "LAUNCHBAY_MODEL": b.tag,
        "LAUNCHBAY_TRUSTED_KEYS": os.pathsep.join(str(k.resolve()) for k in b.keys),
        "LAUNCHBAY_MAX_BATCH": str(cfg.serving.max_batch_size),
        "LAUNCHBAY_BATCH_WAIT_MS": str(cfg.serving.batch_wait_ms),
        "LAUNCHBAY_WORKERS": str(cfg.serving.workers),
        **answer_log.monitored_env(cfg),
    }
    chosen: Runtime = runtime or cfg.serving.server
    if chosen == "lean":
        argv = [sys.executable, "-m", "launchbay.serving.lean", "--host", host, "--port", str(port)]
        return ServerCommand(argv, env, b.src, chosen)
    argv = [sys.executable, "-m", "bentoml", "serve", b.tag, "--host", host, "--port", str(port)]
    # Outside the checkout (`python -m` puts its cwd on sys.path): the model imports the user's
    # code from its Bento only, as it does in a cluster.
    return ServerCommand(argv, env, bento.bentoml_home(home), chosen)
