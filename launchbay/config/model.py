"""The model, its data and the gates it must pass: what the pipeline and `launchbay.checks` read."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from launchbay.config.base import _NAME, Section

_ENTRYPOINT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class FeatureSpec(Section):
    """One input column of the model: its kind and the values the data gate accepts."""

    type: Literal["float", "int", "category", "bool"]
    """float, int, category (with values) or bool."""
    min: float | None = None
    """Lowest allowed value of a numeric feature; None: no floor."""
    max: float | None = None
    """Highest allowed value of a numeric feature; None: no ceiling."""
    values: list[str] | None = Field(default=None, description="allowed values of a category")
    nullable: bool = False
    """Missing values are allowed in this column (else any is a data-gate failure)."""

    @model_validator(mode="after")
    def _consistent(self) -> FeatureSpec:
        if self.type == "category" and not self.values:
            raise ValueError("a category feature needs `values`: the list of allowed categories")
        if self.type != "category" and self.values is not None:
            raise ValueError("`values` applies only to features of type category")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"`min` ({self.min}) is greater than `max` ({self.max})")
        return self


Task = Literal["binary", "multiclass", "regression"]
"""What the model predicts: one of two classes, one of several, or a number."""


class ModelSection(Section):
    """Which model this is and how to train it."""

    name: str = Field(description="registered model name")
    train: str = Field(description="training function as module:function")
    task: Task = Field(
        default="binary", description="binary | multiclass (classification) or regression"
    )
    params: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments given to the training function (hyperparameters), recorded with the run."""
    description: str = ""
    """What the model does, for its model card (`launchbay card`)."""
    intended_use: str = ""
    """Who may use its answers for what (and what not): the model card's intended use."""
    limitations: str = ""
    """Known limitations and risks: the model card's limitations."""
    code: list[str] | None = Field(
        default=None,
        description="your own modules and packages the trained model imports (paths beside this "
        "file), shipped inside the Bento; default: the module of `train`",
    )
    requirements: list[str] = Field(
        default_factory=list,
        description="extra pip requirements of the served model (e.g. xgboost-cpu==3.2.*)",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(
                "expected lower-case letters, digits and '-' (a DNS label: it names services later)"
            )
        return v

    @field_validator("train")
    @classmethod
    def _entrypoint(cls, v: str) -> str:
        if not _ENTRYPOINT.match(v):
            raise ValueError("expected 'package.module:function'")
        return v


class DataSection(Section):
    """The training data, its reference for drift, and its schema."""

    path: str = Field(description="CSV or Parquet file: a path beside this file, or s3://bucket/key, "
                      "gs://bucket/key (credentials and endpoint from the environment) or any fsspec URL")
    reference: str | None = Field(default=None, description="reference data for drift checks")
    target: str = "label"
    """Column holding the label (classification: any type, e.g. 0/1, yes/no; regression: a number)."""
    id_column: str | None = Field(default=None, description="column whose values must be unique")
    features: dict[str, FeatureSpec]
    """The model's input columns by name, each with its type and allowed range or values (the data
    gate checks them)."""
    test_size: Annotated[float, Field(gt=0, lt=1)] = 0.25
    """Fraction of rows held out to evaluate the model and gate it against the champion."""
    split_seed: int = 42
    """Seed of the train/test split (the same data gives the same split)."""
    min_rows: Annotated[int, Field(ge=1)] = 100
    """The data gate fails with fewer rows than this."""

    @field_validator("features")
    @classmethod
    def _non_empty(cls, v: dict[str, FeatureSpec]) -> dict[str, FeatureSpec]:
        if not v:
            raise ValueError("expected at least one feature")
        return v


class DriftSection(Section):
    """Drift of each feature between the reference data and the new data: a feature has drifted
    when its PSI is over `threshold` (a move that matters) *and* beyond sampling noise at the two
    samples' sizes (resampled p-value under the family-wise level `1 - confidence`, split across
    the features)."""

    metric: Literal["psi"] = "psi"
    """Drift measure: psi (population stability index)."""
    threshold: Annotated[float, Field(gt=0)] = 0.2
    """PSI above which a feature's move matters (0.1: small, 0.2: significant, by convention)."""
    bins: Annotated[int, Field(ge=2, le=100)] = 10
    """Quantile bins of the reference a numeric feature is compared in."""
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.99
    """Chance that data from the reference's own distribution raises no drift alarm at all."""
    resamples: Annotated[int, Field(ge=100, le=100_000)] = 2000
    """Resamples of the reference that estimate the PSI sampling noise at these sample sizes."""


GateMetric = Literal["roc_auc", "precision", "recall", "f1", "accuracy", "rmse", "mae", "r2"]


TASK_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "precision", "recall", "f1"),
    "multiclass": ("roc_auc", "precision", "recall", "f1", "accuracy"),
    "regression": ("rmse", "mae", "r2"),
}
"""The held-out metrics each task is judged by (multiclass: macro averages)."""


TASK_GATES = {
    "min_auc": ("binary", "multiclass"),
    "min_precision": ("binary", "multiclass"),
    "min_recall": ("binary", "multiclass"),
    "min_f1": ("binary", "multiclass"),
    "decision_threshold": ("binary",),
    "max_rmse": ("regression",),
    "max_mae": ("regression",),
    "min_r2": ("regression",),
}


class GatesSection(Section):
    """Thresholds of the data and model gates."""

    max_null_fraction: Annotated[float, Field(ge=0, le=1)] = 0.0
    """Fraction of missing values a nullable feature may have."""
    drift: DriftSection = DriftSection()
    min_auc: Annotated[float, Field(ge=0, le=1)] = 0.8
    """Classification: lowest ROC AUC on held-out rows."""
    min_precision: Annotated[float, Field(ge=0, le=1)] = 0.0
    """Classification: lowest precision at decision_threshold."""
    min_recall: Annotated[float, Field(ge=0, le=1)] = 0.0
    """Classification: lowest recall at decision_threshold."""
    min_f1: Annotated[float, Field(ge=0, le=1)] = 0.0
    """Classification: lowest F1 at decision_threshold."""
    decision_threshold: Annotated[float, Field(gt=0, lt=1)] = 0.5
    """binary: the score at or above which the positive class is predicted."""
    max_rmse: Annotated[float, Field(gt=0)] | None = None
    """Regression: highest RMSE on held-out rows; None: not gated."""
    max_mae: Annotated[float, Field(gt=0)] | None = None
    """Regression: highest mean absolute error on held-out rows; None: not gated."""
    min_r2: Annotated[float, Field(le=1)] | None = None
    """Regression: lowest R² on held-out rows; None: not gated."""
    vs_champion: list[GateMetric] | None = Field(
        default=None,
        description="metrics the candidate must not lose against the champion on the same rows; "
        "default: roc_auc (classification), rmse (regression)",
    )
    max_regression_vs_champion: Annotated[float, Field(ge=0, le=1)] = 0.01
    """Allowed loss vs the champion: absolute for scores in [0, 1] (AUC, F1, R²), relative for
    errors (0.01: RMSE or MAE at most 1% above the champion's)."""
    leakage: Literal["warn", "fail"] = "warn"
    """Held-out rows the champion was trained on flatter it (an AUC of 1.0 on rows it learned).
    The comparison then uses only rows neither model saw; with fewer than `min_unseen_rows` of
    them, the gate warns (or fails)."""
    min_unseen_rows: Annotated[int, Field(ge=1)] = 50
    """Fewest held-out rows neither model was trained on for the champion comparison (fewer: leakage
    warns or fails)."""


class MlflowSection(Section):
    """Where runs and models are tracked."""

    tracking_uri: str | None = Field(
        default=None,
        description="any MLflow URI; default: $MLFLOW_TRACKING_URI, else SQLite under LAUNCHBAY_HOME",
    )
    experiment: str | None = Field(default=None, description="default: the model name")


class SigningSection(Section):
    """Which key signs models, and which public keys a deployment trusts."""

    private_key: str | None = Field(
        default=None,
        description="default: $LAUNCHBAY_SIGNING_KEY (path or PEM text), else keys/ in LAUNCHBAY_HOME",
    )
    trusted_keys: list[str] = Field(
        default_factory=list,
        description="public key paths; default: $LAUNCHBAY_TRUSTED_KEYS (':'-separated), else the local key",
    )
