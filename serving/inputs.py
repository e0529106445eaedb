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

        if isinstance(rows, pd.DataFrame):
            frame, missing = rows, bool(rows.isna().to_numpy().any())
        else:
            frame = pd.DataFrame(rows, columns=list(features))
            missing = any(v is None for r in rows for v in r)
        if missing:
            # A missing value is NaN whatever else its column holds: a text column whose values
            # are all None in one batch would otherwise reach the pipeline's imputer as None, which
            # it does not treat as missing -- and a row's answer would depend on its batch-mates.
            frame = frame.astype({c: object for c in frame.columns if frame[c].dtype == object})
            frame = frame.where(frame.notna(), np.nan)
        return frame[list(names)]
    if hasattr(rows, "to_numpy"):
        return rows[list(features)].to_numpy(dtype=object)
    return np.asarray(rows, dtype=object)
