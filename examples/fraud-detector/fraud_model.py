"""The example model: card-transaction fraud detection, trained by `train` (`model.train` in
launchbay.yaml is `fraud_model:train`).

This is the user's side of the contract, exactly as in any model repository: a function
`train(features, target, params)` returning a fitted estimator with `predict_proba`. launchbay
imports it from this directory (the config's directory is put on the steps' import path), and the
served model imports `engineer` from here too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the served model imports this module: no pandas on its start-up path
    import pandas as pd

CATEGORIES = [
    "grocery",
    "restaurants",
    "fuel",
    "clothing",
    "electronics",
    "travel",
    "online_retail",
    "digital_goods",
    "gambling",
]

FEATURES = [
    "amount",
    "hour",
    "merchant_category",
    "distance_from_home_km",
    "device_age_days",
    "card_present",
    "transactions_last_24h",
]
"""The example model's input columns, in the order `launchbay.yaml` lists them."""


_CATEGORY = {c: i for i, c in enumerate(CATEGORIES)}


def engineer(rows: Any) -> np.ndarray:
    """Turn raw feature rows (2-D, columns in `FEATURES` order) into the model's numeric matrix.

    Vectorised numpy, few calls: at serving time this runs on every request, and for one row the
    cost is the number of numpy calls, not the arithmetic (a pandas column selection would cost
    more than the whole logistic regression).
    """
    x = np.asarray(rows, dtype=object)
    numbers = x[:, [0, 1, 3, 4, 5, 6]].astype(float)  # amount, hour, distance, device age, card, 24h
    amount, hour, distance, device_age = numbers[:, 0], numbers[:, 1], numbers[:, 2], numbers[:, 3]
    merchant = np.fromiter((_CATEGORY.get(m, -1) for m in x[:, 2]), dtype=np.int64, count=len(x))
    out = np.empty((len(x), 7 + len(CATEGORIES)))
    out[:, 0] = np.log1p(amount)  # amounts and distances are log-normal
    out[:, 1] = np.log1p(distance)
    out[:, 2] = (hour <= 5) | (hour >= 23)  # risk is not monotonic in the hour
    out[:, 3] = device_age < 14  # nor in the device's age: brand new is risky
    out[:, 4] = np.log1p(device_age)
    out[:, 5:7] = numbers[:, 4:6]  # card present, transactions in the last 24 h
    out[:, 7:] = merchant[:, None] == np.arange(len(CATEGORIES))  # one column per category
    return out


def train(features: pd.DataFrame, target: pd.Series, params: dict[str, Any]) -> Any:
    """Train the example classifier: engineered features, scaling, logistic regression.

    The fitted pipeline takes a 2-D array of raw rows in `FEATURES` order (no pandas needed at
    serving time).

    Args:
        features: the feature columns named in `launchbay.yaml`, training rows only.
        target: 0/1 labels aligned with `features`.
        params: `model.params` from `launchbay.yaml` (here: `C`, `class_weight`, `max_iter`).

    Returns:
        A fitted scikit-learn estimator with `predict_proba`.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    if list(features.columns) != FEATURES:
        raise ValueError(f"the example model expects the features {FEATURES} in this order")
    model = Pipeline(
        [
            ("features", FunctionTransformer(engineer)),
            ("scale", StandardScaler()),
            (
                "clf",
                LogisticRegression(
                    C=float(params.get("C", 1.0)),
                    class_weight=params.get("class_weight"),
                    max_iter=int(params.get("max_iter", 1000)),
                ),
            ),
        ]
    )
    model.fit(features.to_numpy(dtype=object), target.to_numpy())
    return model
