"""Packages made from a verified Bento: an AWS Lambda function, an Azure Functions app, an edge bundle.

The Bento stays the package: each of these is its code (`src/`: launchbay's serving floors and
the user's model code) and its signed model directory, copied byte for byte -- the model's one
signature still covers every file, and each runtime verifies it before loading. Trusted keys are
never packaged: the deployment provides them (`$LAUNCHBAY_TRUSTED_KEY_PEMS` for a function,
`--trusted-key` on a device).

* `lambda_package`: `launchbay_handler.handler` (API Gateway and Function URL events), the code and
  `model/` as `function.zip`, its `requirements.txt` (for a layer), and a container image
  definition (`Dockerfile` on the AWS Lambda Python base image) for images up to 10 GB.
* `azure_package`: a Python v2 programming-model app (`function_app.py`, HTTP trigger `predict`),
  `host.json`, `requirements.txt`.
* `edge_bundle`: the ONNX variant and a minimal runtime (onnxruntime, numpy and cryptography; no
  BentoML, no pydantic, no web framework): `python -m launchbay.serving.edge` answers one call or
  HTTP; a README for the device; as a directory and a `.tar.gz`, with its size.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import tarfile
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from launchbay.errors import UsageError
from launchbay.serving.lean_model import has_variant

EDGE_FILES = (
    "__init__.py",
    "checks/__init__.py",
    "checks/ec.py",
    "checks/lean_verify.py",
    "checks/signature.py",
    "checks/verdict.py",
    "serving/__init__.py",
    "serving/edge.py",
    "serving/guard.py",
    "serving/lean_core.py",
    "serving/lean_model.py",
    "serving/rows.py",
)
"""launchbay's files on a device: the lean verifier, the row check and the ONNX scorer."""

LEAN = ("onnxruntime", "numpy", "cryptography")
NATIVE = ("numpy", "pyyaml", "scikit-learn", "skops", "pandas", "cryptography")
"""What a function needs installed on the ONNX path, and on the native one (the model's library too)."""


@dataclass
class Package:
    """What was written, and how big it is."""

    kind: str
    directory: Path
    archive: Path
    variant: str
    sizes_mb: dict[str, float] = field(default_factory=dict)
    requirements: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """JSON form."""
        d = asdict(self)
        d["directory"], d["archive"] = str(self.directory), str(self.archive)
        return d


def _pinned(names: tuple[str, ...]) -> list[str]:
    out = []
    for n in names:
        try:
            out.append(f"{n}=={importlib.metadata.version(n)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(n)
    return out


def _requirements(signed: Path) -> tuple[list[str], str]:
    if has_variant(signed):
        return _pinned(LEAN), "onnx"
    listed = signed / "requirements.txt"  # the model's own library (xgboost, lightgbm), as MLflow recorded it
    own = [
        r
        for r in (listed.read_text().split() if listed.exists() else [])
        if not r.startswith(("-", "mlflow"))
    ]
    return list(dict.fromkeys([*_pinned(NATIVE), *own])), "native"


def _mb(path: Path) -> float:
    if path.is_file():
        return round(path.stat().st_size / 2**20, 3)
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20, 3)


def _code(src: Path, dst: Path, only: tuple[str, ...] | None = None) -> None:
    """The Bento's code into `dst`: launchbay's package (or only the listed files of it) and the
    user's model code (every other entry of the Bento's src, but BentoML's own build file)."""
    dst.mkdir(parents=True, exist_ok=True)
    for entry in sorted(src.iterdir()):
        if entry.name == "bentofile.yaml" or entry.name == "__pycache__":
            continue
        if entry.name == "launchbay" and only is not None:
            for rel in only:
                (dst / "launchbay" / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(entry / rel, dst / "launchbay" / rel)
        elif entry.is_dir():
            shutil.copytree(entry, dst / entry.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copyfile(entry, dst / entry.name)


def _fresh(directory: Path) -> Path:
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    return directory


def _zip(root: Path, archive: Path, skip: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(root.rglob("*")):
            rel = f.relative_to(root)
            if f.is_file() and rel.parts[0] not in skip:
                z.write(f, rel.as_posix())
    return archive


HANDLER = '''"""AWS Lambda entry point (handler: launchbay_handler.handler), by `launchbay package --lambda`.

The handler verifies model/ against $LAUNCHBAY_TRUSTED_KEY_PEMS (or $LAUNCHBAY_TRUSTED_KEYS) on a
cold start and serves POST /predict for API Gateway and Function URL events.
"""

from launchbay.serving.functions import handler

__all__ = ["handler"]
'''

DOCKERFILE = """# The function as a container image (AWS Lambda's Python base image), written by launchbay.
FROM public.ecr.aws/lambda/python:3.11
COPY requirements.txt ${LAMBDA_TASK_ROOT}/
RUN pip install --no-cache-dir -r ${LAMBDA_TASK_ROOT}/requirements.txt --target ${LAMBDA_TASK_ROOT}
COPY launchbay_handler.py ${LAMBDA_TASK_ROOT}/
COPY code/ ${LAMBDA_TASK_ROOT}/
COPY model/ ${LAMBDA_TASK_ROOT}/model/
CMD ["launchbay_handler.handler"]
"""


def lambda_package(src: Path, signed: Path, out: Path, name: str) -> Package:
    """An AWS Lambda function of the model: `out/<name>-lambda/` and its `function.zip`."""
    root = _fresh(out / f"{name}-lambda")
    requirements, variant = _requirements(signed)
    _code(src, root / "code")
    shutil.copytree(signed, root / "model")
    (root / "launchbay_handler.py").write_text(HANDLER)
    (root / "requirements.txt").write_text("\n".join(requirements) + "\n")
    (root / "Dockerfile").write_text(DOCKERFILE)
    (root / "README.md").write_text(_lambda_readme(name, variant))
    archive = _lambda_zip(root, root / "function.zip")
    sizes = {"zip": _mb(archive), "model": _mb(root / "model"), "code": _mb(root / "code")}
    return Package("lambda", root, archive, variant, sizes, requirements)


def _lambda_zip(root: Path, archive: Path) -> Path:
    """The deployment zip: the handler and the code at the root (Lambda imports from there), model/."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(root / "launchbay_handler.py", "launchbay_handler.py")
        for base, prefix in ((root / "code", ""), (root / "model", "model/")):
            for f in sorted(base.rglob("*")):
                if f.is_file():
                    z.write(f, prefix + f.relative_to(base).as_posix())
    return archive


def lambda_zip_bytes(src: Path, signed: Path, scratch: Path, name: str) -> bytes:
    """The deployment zip's bytes (what the function target uploads for a version)."""
    return lambda_package(src, signed, scratch, name).archive.read_bytes()


FUNCTION_APP = '''"""Azure Functions app (Python v2 programming model), by `launchbay package --azure`.

POST /api/predict answers like launchbay's HTTP runtime. The model in model/ is verified against
the app setting LAUNCHBAY_TRUSTED_KEY_PEMS (the public keys' PEM text) before it is loaded.
"""

import azure.functions as func

from launchbay.serving.functions import azure_answer

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="predict", methods=["POST"])
def predict(req: func.HttpRequest) -> func.HttpResponse:
    """One request: the rows of its JSON body, answered with the model's predictions."""
    content_type = req.headers.get("content-type")
    status, headers, body = azure_answer(req.method, "/predict", content_type, req.get_body())
    return func.HttpResponse(body, status_code=status, headers=headers)


@app.route(route="healthz", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def healthz(req: func.HttpRequest) -> func.HttpResponse:
    """200 once the model verified and loaded; 503 with the reason otherwise."""
    status, headers, body = azure_answer("GET", "/healthz", None, b"")
    return func.HttpResponse(body, status_code=status, headers=headers)
'''

HOST_JSON = {
    "version": "2.0",
    "logging": {"logLevel": {"default": "Warning"}},
    "extensionBundle": {"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": "[4.*, 5.0.0)"},
}


def azure_package(src: Path, signed: Path, out: Path, name: str) -> Package:
    """An Azure Functions app of the model: `out/<name>-azure/` and its `.zip` (zip deploy)."""
    root = _fresh(out / f"{name}-azure")
    requirements, variant = _requirements(signed)
    requirements = [*_pinned(("azure-functions",)), *requirements]
    _code(src, root)
    shutil.copytree(signed, root / "model")
    (root / "function_app.py").write_text(FUNCTION_APP)
    (root / "host.json").write_text(json.dumps(HOST_JSON, indent=2) + "\n")
    (root / "requirements.txt").write_text("\n".join(requirements) + "\n")
    (root / ".funcignore").write_text("README.md\n")
    (root / "README.md").write_text(_azure_readme(name, variant))
    archive = _zip(root, out / f"{name}-azure.zip")
    sizes = {"zip": _mb(archive), "model": _mb(root / "model")}
    return Package("azure", root, archive, variant, sizes, requirements)


def edge_bundle(src: Path, signed: Path, out: Path, name: str, reason: str = "") -> Package:
    """The edge bundle: `out/<name>-edge/` and `out/<name>-edge.tar.gz`.

    Raises:
        UsageError: the model has no ONNX variant (`reason`: why it was served natively).
    """
    if not has_variant(signed):
        why = f" ({reason})" if reason else ""
        raise UsageError(
            f"{name} has no ONNX variant{why}: an edge bundle carries the ONNX graph and a runtime "
            "without the model's library; fix the conversion or serve it natively"
        )
    root = _fresh(out / f"{name}-edge")
    _code(src, root, only=EDGE_FILES)
    shutil.copytree(signed, root / "model")
    requirements = _pinned(LEAN)
    (root / "requirements.txt").write_text("\n".join(requirements) + "\n")
    (root / "README.md").write_text(_edge_readme(name))
    archive = out / f"{name}-edge.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname=root.name)
    graph = root / "model" / "onnx" / "model.onnx"
    sizes = {
        "archive": _mb(archive),
        "directory": _mb(root),
        "onnx graph": _mb(graph),
        "model (all signed files)": _mb(root / "model"),
        "runtime code": _mb(root / "launchbay"),
        "dependencies installed": _installed_mb(LEAN),
    }
    return Package("edge", root, archive, "onnx", sizes, requirements)


def _installed_mb(names: tuple[str, ...]) -> float:
    total = 0
    for n in names:
        try:
            dist = importlib.metadata.distribution(n)
        except importlib.metadata.PackageNotFoundError:
            continue
        for f in dist.files or []:
            p = Path(str(f.locate()))
            if p.is_file():
                total += p.stat().st_size
    return round(total / 2**20, 1)


def _lambda_readme(name: str, variant: str) -> str:
    return f"""# {name} as an AWS Lambda function

Written by `launchbay package --lambda`. The model ({variant}) in `model/` is signed; the handler
verifies it before loading and refuses to serve (503, with the reason in the log) otherwise.

- Handler: `launchbay_handler.handler`; runtime: Python 3.11; memory: 1024 MB or more.
- Trusted keys: set `LAUNCHBAY_TRUSTED_KEY_PEMS` to the signing key's public PEM (never shipped here).
- Zip: `function.zip` holds the handler, the code and the model; its dependencies
  (`requirements.txt`) go in a layer (`pip install -r requirements.txt --target python/`, zipped).
- Image: `docker build -t {name} .` (the Dockerfile installs the dependencies into the image).
- Requests: API Gateway (REST or HTTP API) or a Function URL; `POST /predict` with
  `{{"row": {{...}}}}` or `{{"rows": [...]}}`, as launchbay's HTTP runtime.
- Progressive delivery: `rollout.target: function` publishes a version per model version and moves
  a weighted alias (`AdditionalVersionWeights`) through the canary steps.
"""


def _azure_readme(name: str, variant: str) -> str:
    return f"""# {name} as an Azure Functions app

Written by `launchbay package --azure` (Python v2 programming model, HTTP trigger). The model
({variant}) in `model/` is signed and verified before it is loaded.

- App setting `LAUNCHBAY_TRUSTED_KEY_PEMS`: the signing key's public PEM (never shipped here).
- Deploy: `func azure functionapp publish APP` in this directory, or zip deploy `{name}-azure.zip`.
- `POST /api/predict` (function key) with `{{"row": {{...}}}}` or `{{"rows": [...]}}`; `GET /api/healthz`.
"""


def _edge_readme(name: str) -> str:
    return f"""# {name}: edge bundle

The signed model's ONNX variant (`model/onnx/model.onnx`, matched against the native model on the
held-out rows before it was signed) and a minimal runtime: onnxruntime, numpy and cryptography.

    pip install -r requirements.txt
    # the signing key's public half, from a channel you trust (it is not in this bundle):
    python -m launchbay.serving.edge --trusted-key signing-key.pub --row '{{"feature": 1.0, ...}}'
    python -m launchbay.serving.edge --trusted-key signing-key.pub --serve --port 8080

Run it from this directory. Every start verifies every file of `model/` against the key and
refuses (exit 1, naming the file) if anything changed; nothing unverified is ever loaded.
From Python: `from launchbay.serving.edge import load; model = load("model", ["signing-key.pub"])`,
then `model.predict({{"rows": [...]}})`.
"""
