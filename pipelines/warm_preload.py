"""Imported once by the warm steps' forkserver (`pipelines.warm`): the libraries every pipeline step
would otherwise import again in a new interpreter. Nothing here runs a step or reads a project.

A library missing from this installation is skipped (a step needing it imports it itself, as a
cold start would). THREADS_AFTER_IMPORT tells the forkserver's probe whether forking is safe.
"""

from __future__ import annotations

import contextlib
import importlib
import threading

HEAVY = (
    "hera.workflows.runner",
    "hera.workflows._runner.util",
    "pandas",
    "pyarrow.parquet",
    "sklearn.ensemble",
    "sklearn.linear_model",
    "sklearn.metrics",
    "skops.io",
    "mlflow",
    "mlflow.pyfunc",
    "great_expectations",
    "launchbay.pipelines.steps",
    "launchbay.checks.data_gate",
    "launchbay.checks.model_gate",
    "launchbay.checks.signature",
    "launchbay.serving.package",
)

for name in HEAVY:
    with contextlib.suppress(ImportError):
        importlib.import_module(name)

THREADS_AFTER_IMPORT = threading.active_count()
"""Threads alive once everything above is imported: 1 means forking this process is safe."""
