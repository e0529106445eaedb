"""Baseline for the serving benchmark: the common default -- MLflow pyfunc called with a DataFrame.

Same model directory, same request body as launchbay's service (`{"rows": [...]}`), one worker.
"""

import os
from typing import Any

import bentoml
import mlflow.pyfunc
import pandas as pd


@bentoml.service(name="baseline-pyfunc", workers=1)
class Baseline:
    """Loads the model with mlflow.pyfunc and predicts on a pandas DataFrame per request."""

    def __init__(self) -> None:
        self.model = mlflow.pyfunc.load_model(os.environ["BASELINE_MODEL_DIR"])

    @bentoml.api
    def predict(self, rows: list[dict[str, Any]]) -> list[float]:
        """Predict each row."""
        return [float(x) for x in self.model.predict(pd.DataFrame(rows))]
