"""The example's data: seeded, realistic card transactions in three variants.

`generate` makes seeded transaction data (log-normal amounts that depend on the merchant, a
daytime peak of activity, a heavy tail of distances from home, young devices and card-not-present
purchases raising the risk of fraud) in three variants used by the demo and the tests:

* `good`    -- the distribution the model is meant for.
* `drifted` -- the same schema, but shifted: higher amounts, night-time activity, more online
  merchants, longer distances. The data gate must stop it on drift.
* `broken`  -- what a bad export looks like: a missing column, amounts as text, nulls, an all-null
  column and an unexpected extra column. The data gate must stop it on schema.

    python fraud_data.py --variant good --seed 1 -o data/transactions.parquet
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from fraud_model import CATEGORIES

Variant = Literal["good", "drifted", "broken"]
VARIANTS: tuple[Variant, ...] = ("good", "drifted", "broken")

# Typical share of transactions and median amount (EUR) per merchant category.
_CATEGORY_SHARE = np.array([0.22, 0.15, 0.10, 0.10, 0.08, 0.07, 0.18, 0.06, 0.04])
_DRIFTED_SHARE = np.array([0.12, 0.10, 0.05, 0.08, 0.14, 0.09, 0.26, 0.10, 0.06])
_MEDIAN_AMOUNT = np.array([38.0, 32.0, 55.0, 70.0, 240.0, 380.0, 60.0, 25.0, 90.0])
_ONLINE = {"online_retail", "digital_goods", "gambling"}
_RISKY = {"electronics", "digital_goods", "gambling"}

NUMERIC_FEATURES = [
    "amount",
    "hour",
    "distance_from_home_km",
    "device_age_days",
    "transactions_last_24h",
]
CATEGORICAL_FEATURES = ["merchant_category"]
BOOLEAN_FEATURES = ["card_present"]
TARGET = "is_fraud"


def generate(n_rows: int = 20_000, variant: Variant = "good", seed: int = 1) -> pd.DataFrame:
    """Return `n_rows` synthetic transactions of the given variant (deterministic for a seed)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    rng = np.random.default_rng(seed)
    drifted = variant == "drifted"

    share = _DRIFTED_SHARE if drifted else _CATEGORY_SHARE
    cat_idx = rng.choice(len(CATEGORIES), size=n_rows, p=share / share.sum())
    category = np.array(CATEGORIES)[cat_idx]

    amount_scale = 2.2 if drifted else 1.0
    amount = _MEDIAN_AMOUNT[cat_idx] * amount_scale * rng.lognormal(0.0, 0.8, n_rows)
    amount = np.clip(np.round(amount, 2), 0.5, 20_000.0)

    peak = 21.0 if drifted else 14.0
    hour = np.mod(np.round(rng.normal(peak, 4.5, n_rows)), 24).astype(np.int64)

    distance = rng.lognormal(np.log(8.0 * (4.0 if drifted else 1.0)), 1.1, n_rows)
    distance = np.clip(np.round(distance, 1), 0.0, 5_000.0)

    device_age = np.clip(rng.exponential(420.0, n_rows), 0, 3650).astype(np.int64)
    online = np.isin(category, list(_ONLINE))
    card_present = np.where(online, False, rng.random(n_rows) < 0.85)
    tx_24h = rng.poisson(2.0, n_rows).astype(np.int64)

    logit = (
        -7.0
        + 2.4 * np.log(amount / 60.0).clip(min=0)
        + 3.2 * ((hour <= 5) | (hour >= 23))
        + 1.3 * np.log1p(distance / 20.0)
        + 3.8 * (device_age < 14)
        + 2.0 * np.isin(category, list(_RISKY))
        - 2.5 * card_present
        + 1.0 * np.maximum(tx_24h - 3, 0)
    )
    is_fraud = (rng.random(n_rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)

    frame = pd.DataFrame(
        {
            "transaction_id": [f"tx-{seed:03d}-{i:07d}" for i in range(n_rows)],
            "amount": amount,
            "hour": hour,
            "merchant_category": category,
            "distance_from_home_km": distance,
            "device_age_days": device_age,
            "card_present": card_present.astype(bool),
            "transactions_last_24h": tx_24h,
            TARGET: is_fraud,
        }
    )
    if variant == "broken":
        frame = _break(frame, rng)
    return frame


def _break(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Damage a frame the way real exports get damaged."""
    out = frame.drop(columns=["device_age_days"])
    # Amounts exported as text with a currency, for some rows: the column becomes strings.
    amount = out["amount"].map(lambda a: f"{a:.2f}").astype(object)
    text_rows = rng.random(len(out)) < 0.2
    amount[text_rows] = amount[text_rows].map(lambda s: f"{s} EUR")
    out["amount"] = amount
    hour = out["hour"].astype("float64")
    hour[rng.random(len(out)) < 0.1] = np.nan
    out["hour"] = hour
    out["distance_from_home_km"] = np.nan
    out["export_batch"] = "2026-11-01"
    return out


def write(frame: pd.DataFrame, path: Path) -> None:
    """Write a frame as Parquet or CSV, chosen by the file extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix.lower() in {".parquet", ".pq"}:
        frame.to_parquet(path, index=False)
    else:
        raise ValueError(f"{path}: expected a .parquet or .csv file name")


def main() -> None:
    """Write one data file: `python fraud_data.py --variant good --seed 1 -o FILE.parquet`."""
    parser = argparse.ArgumentParser(description="Write the example's card-transaction data.")
    parser.add_argument("-o", "--output", type=Path, required=True, help=".parquet or .csv file")
    parser.add_argument("--variant", choices=VARIANTS, default="good")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1, help="same seed, same data")
    args = parser.parse_args()
    if args.output.suffix.lower() not in {".parquet", ".pq", ".csv"}:
        parser.error(f"--output {args.output}: expected a .parquet or .csv file name")
    frame = generate(args.rows, args.variant, args.seed)
    write(frame, args.output)
    print(f"wrote {len(frame)} {args.variant} transactions to {args.output}")


if __name__ == "__main__":
    main()
