"""How a model receives rows: the one convention shared by evaluation and serving.

A model fitted on a DataFrame (it has `feature_names_in_`) gets a DataFrame with those columns;
any other model gets a 2-D object array with the features in the config's order. The array path
matters for speed: on the machines launchbay runs on, selecting pandas columns costs more than a
logistic regression's whole prediction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def model_input(model: Any, rows: Any, features: Sequence[str]) -> Any:
    """Rows (a DataFrame, or a 2-D sequence in `features` order) in the form `model` was fitted on."""
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        import pandas as pd

        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows, columns=list(features))
        return frame[list(names)]
    if hasattr(rows, "to_numpy"):
        return rows[list(features)].to_numpy(dtype=object)
    return np.asarray(rows, dtype=object)
