"""Package a verified, signed model directory as a Bento (no Docker needed).

The Bento carries the model directory exactly as signed (model files, `serving.json`,
`provenance.json`, `model.sig`) as a BentoML model, plus launchbay's service code. The model's tag
is baked in as `$LAUNCHBAY_MODEL`; trusted keys are not (the deployment provides them).

The service's code is taken by package, never by globbing a directory: the floors it runs on
(launchbay's foundation modules, `launchbay.checks`, `launchbay.serving`) are copied from the
installed `launchbay` package into a private build context. Nothing else that happens to lie
beside launchbay (another distribution in site-packages, a user's own `serving/`) can get in.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import launchbay
from launchbay.config import LaunchbayConfig
from launchbay.errors import UsageError
from launchbay.home import Home

SERVICE = "launchbay.serving.service:ModelService"
SERVICE_FLOORS = ("config", "checks", "serving")
"""Subpackages of launchbay the service imports, besides the foundation's top-level modules
(`config` is the foundation's own package: the serving spec reads its sections)."""


SERVICE_PACKAGES = [
    "bentoml==1.4.*",
    "scikit-learn==1.9.*",
    "skops",
    "numpy",
    "pandas",
    "pyyaml",
    "model-signing==1.1.*",
    "pyopenssl",
    "pydantic>=2.14",
    "httptools",  # the lean runtime (uvicorn and prometheus-client come with BentoML)
]
"""What the service needs installed (the Bento's python packages; also what a package ships)."""

SIGNED_DIR = "signed"
"""Subdirectory of the BentoML model holding the signed files (BentoML adds its own model.yaml)."""


def signed_dir(stored_model_path: str | Path) -> Path:
    """Where the signed model directory lives inside a stored BentoML model."""
    return Path(stored_model_path) / SIGNED_DIR


def bentoml_home(home: Home) -> Path:
    """BentoML's store under launchbay's state directory."""
    return home.root / "bentoml"


def use_store(home: Home) -> None:
    """Point BentoML at launchbay's store; must run before `bentoml` is imported."""
    os.environ["BENTOML_HOME"] = str(bentoml_home(home))
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")


def tag(model: str, version: str) -> str:
    """The BentoML tag of a model version (used for both the model and the Bento)."""
    return f"{model}:v{version}"


def build(
    model_dir: Path,
    model: str,
    version: str,
    labels: dict[str, str],
    code: Sequence[Path] = (),
    requirements: Sequence[str] = (),
) -> str:
    """Store the model directory and build the Bento; return the Bento's tag. Idempotent.

    Args:
        code: the user's own modules (files) and packages (directories) the model imports; they
            are shipped at the Bento's root, so the served model needs nothing from the checkout.
        requirements: the model's own pip requirements (its library, `model.requirements`).
    """
    import bentoml
    from bentoml._internal.bento.build_config import BentoEnvSchema
    from bentoml.exceptions import NotFound

    t = tag(model, version)
    with contextlib.suppress(NotFound):
        bentoml.bentos.delete(t)
    with contextlib.suppress(NotFound):
        bentoml.models.delete(t)
    with bentoml.models.create(t, labels=labels) as stored:
        shutil.copytree(model_dir, signed_dir(stored.path))
    os.environ["LAUNCHBAY_MODEL"] = t  # the service module reads it when the build imports it
    with tempfile.TemporaryDirectory(prefix="launchbay-bento-") as ctx:
        service_sources(Path(ctx))
        shipped = user_sources(Path(ctx), list(code))
        bento = bentoml.bentos.build(
            SERVICE,
            name=model,
            version=f"v{version}",
            labels=labels,
            models=[t],
            include=["launchbay/**/*.py", "launchbay/**/py.typed", *shipped],
            envs=[BentoEnvSchema(name="LAUNCHBAY_MODEL", value=t)],
            python={
                "lock_packages": False,
                "packages": list(dict.fromkeys([*SERVICE_PACKAGES, *requirements])),
            },
            build_ctx=ctx,
        )
    _private(Path(bento.path))
    return str(bento.tag)


def build_for(cfg: LaunchbayConfig, model_dir: Path, version: str) -> str:
    """Build the Bento of a version of the configured model: its user code (`model.code`) and its
    own pip requirements go in with it.

    Raises:
        UsageError: the model uses a module of the user's that would not be shipped.
    """
    from launchbay.serving.artefact import metadata

    code = cfg.code_paths()
    flavor = (metadata(model_dir).get("flavors") or {}).get("sklearn") or {}
    if missing := unshipped_modules(flavor.get("skops_trusted_types") or [], code):
        shipped = ", ".join(p.name for p in code) or "nothing"
        raise UsageError(
            f"the model uses code from {', '.join(missing)}, which would not be in the Bento "
            f"(model.code ships {shipped}): list it in model.code in {cfg.source}"
        )
    listed = model_dir / "requirements.txt"  # the model's own, as MLflow recorded them
    requirements = listed.read_text().split() if listed.exists() else []
    from launchbay.serving.lean_model import has_variant

    if has_variant(model_dir):
        import importlib.metadata

        requirements.append(f"onnxruntime=={importlib.metadata.version('onnxruntime')}")
    name = cfg.model.name
    return build(
        model_dir,
        name,
        version,
        labels={"launchbay.io/model": name, "launchbay.io/version": version},
        code=code,
        # The service does not import MLflow; pip options are not packages.
        requirements=[r for r in requirements if not r.startswith(("-", "mlflow"))],
    )


def user_sources(ctx: Path, code: Sequence[Path]) -> list[str]:
    """Copy the user's modules and packages into the build context; return their include patterns.

    Raises:
        UsageError: a path that does not exist, or one named like launchbay's own package.
    """
    patterns = []
    for path in code:
        if not path.exists():
            raise UsageError(f"model.code: {path} does not exist (expected a module file or a package)")
        if path.name in {"launchbay", "launchbay.py"}:
            raise UsageError(f"model.code: {path} would shadow launchbay's own package")
        if path.is_dir():
            shutil.copytree(path, ctx / path.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            patterns.append(f"{path.name}/**")
        else:
            shutil.copyfile(path, ctx / path.name)
            patterns.append(path.name)
    return patterns


def unshipped_modules(trusted_types: Sequence[str], code: Sequence[Path]) -> list[str]:
    """Top-level modules the model's recorded types come from that neither an installed
    distribution, the standard library nor the shipped code provides."""
    import sys

    shipped = {p.name.removesuffix(".py") for p in code}
    tops = {name.split(".")[0] for name in trusted_types}
    unknown = {t for t in tops if t not in sys.stdlib_module_names and t not in shipped and not _in_site(t)}
    if not unknown:
        return []
    # Only now the full map (seconds: it reads every distribution's file list), for what an
    # editable install or a .pth entry provides from outside site-packages.
    import importlib.metadata

    installed = importlib.metadata.packages_distributions()
    return sorted(t for t in unknown if t not in installed)


def _in_site(module: str) -> bool:
    """True when the top-level `module` is found in site-packages (what pip installed), found
    without importing it."""
    import importlib.util
    import site
    import sysconfig

    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    roots = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()}
    places = [spec.origin] if spec.origin else list(spec.submodule_search_locations or [])
    return bool(places) and all(
        any(Path(p).resolve().is_relative_to(Path(r).resolve()) for r in roots) for p in places
    )


def _private(root: Path) -> None:
    """The Bento is its user's alone, like the rest of the state directory (BentoML writes its
    Docker entrypoint world-readable and executable)."""
    for p in [root, *root.rglob("*")]:
        if not p.is_symlink():
            p.chmod(p.stat().st_mode & 0o700)


def service_sources(ctx: Path) -> list[Path]:
    """Copy the service's code into `ctx/launchbay/` by package; return the files copied.

    The foundation is launchbay's top-level modules (not `__main__`; the CLI, the desk and the
    doctor are packages of their own); above it only the floors the service imports. Links (the
    repository's layout) are followed: the copy holds files.
    """
    src = Path(launchbay.__file__).resolve().parent
    dst = ctx / "launchbay"
    dst.mkdir(parents=True)
    copied = []
    for f in sorted(src.glob("*.py")):
        if f.name != "__main__.py":
            copied.append(Path(shutil.copyfile(f, dst / f.name)))
    for floor in SERVICE_FLOORS:
        package = (src / floor).resolve()
        for f in sorted(package.glob("*.py")):
            (dst / floor).mkdir(exist_ok=True)
            copied.append(Path(shutil.copyfile(f, dst / floor / f.name)))
    return copied
