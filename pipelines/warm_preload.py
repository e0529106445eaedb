"""Imported by the warm steps' server (`pipelines.step_server`): the libraries every pipeline step
would otherwise import again in a new interpreter. Nothing here runs a step or reads a project.

Importing this module imports only FIRST (what every step starts with); the server then imports
LATER one item at a time between requests, in the order the steps need them, so that the first
run's first step is forked at once and the rest arrives while it runs (on another core). A step
forked before an item was imported imports it itself, as a cold start would. A library missing
from this installation is skipped. THREADS_AFTER_IMPORT tells the server whether forking is safe
(it checks again after each item).
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Callable


def _distributions() -> None:
    """MLflow maps every installed module to its distribution once per process (seconds: it reads
    each distribution's file list) when a model is logged; done here, every step forked later has it."""
    from mlflow.utils import requirements_utils

    requirements_utils._init_modules_to_packages_map()  # type: ignore[no-untyped-call]


FIRST = ("hera.workflows.runner", "hera.workflows._runner.util")

LATER: tuple[str | Callable[[], None], ...] = (
    # validate-data
    "pandas",
    "pyarrow.parquet",
    "mlflow",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "great_expectations",
    "launchbay.checks.data_gate",
    "launchbay.pipelines.steps",
    # train, evaluate, register
    "sklearn.ensemble",
    "sklearn.linear_model",
    "sklearn.metrics",
    "skops.io",
    "mlflow.pyfunc",
    "mlflow.sklearn",
    _distributions,
    "launchbay.checks.model_gate",
    # sign
    "launchbay.checks.signature",
    "model_signing.signing",
    "skl2onnx",
    "onnxruntime",
    "launchbay.serving.onnx_variant",
    # package
    "bentoml",
    "bentoml.models",
    "launchbay.serving.package",
)


for _name in FIRST:
    with contextlib.suppress(ImportError):
        importlib.import_module(_name)

THREADS_AFTER_IMPORT = threading.active_count()
"""Threads alive once FIRST is imported: 1 means forking this process is safe."""
