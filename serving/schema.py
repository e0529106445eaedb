"""Request and response types generated from a model's features.

Every rule the data gate applies to training data applies to a request: the type (strict: "12" is
not a number, 1 is not a boolean), the range, the allowed categories, nulls only where the feature
is nullable, no NaN or infinity, no unknown fields. A request breaking one gets a 400 that names
the field; nothing reaches the model that the model was not trained to see.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from launchbay.config.model import FeatureSpec
from launchbay.serving.spec import ServingSpec


class Prediction(BaseModel):
    """A binary classifier's answer for one row."""

    prediction: int | str | bool = Field(description="predicted class at the decision threshold")
    score: float = Field(description="probability of the positive class")


class ClassPrediction(BaseModel):
    """A multiclass classifier's answer for one row."""

    prediction: int | str | bool = Field(description="the most probable class")
    score: float = Field(description="probability of the predicted class")
    scores: dict[str, float] = Field(description="probability of each class")


class ValuePrediction(BaseModel):
    """A regressor's answer for one row."""

    prediction: float = Field(description="the predicted value")


Answers = list[Prediction] | list[ClassPrediction] | list[ValuePrediction]
"""One answer per row, all of the model's kind."""


class PredictResponse(BaseModel):
    """Answers for every row of a request, with the model version that gave them."""

    model: str
    version: str
    predictions: Answers


def answers(spec: ServingSpec, output: Any) -> Answers:
    """The answer for each row of a model's output: (n, k) probabilities or (n,) values."""
    import numpy as np

    out = np.asarray(output, dtype=float)
    if spec.task == "regression":
        return [ValuePrediction(prediction=v) for v in out.reshape(-1).tolist()]
    classes = list(spec.classes or range(out.shape[1]))
    if spec.task == "binary":
        positive = out[:, 1].tolist()
        return [
            Prediction(prediction=classes[1] if s >= spec.decision_threshold else classes[0], score=s)
            for s in positive
        ]
    names = [str(c) for c in classes]
    best = out.argmax(axis=1).tolist()
    return [
        ClassPrediction(
            prediction=classes[i], score=row[i], scores=dict(zip(names, row, strict=True))
        )
        for i, row in zip(best, out.tolist(), strict=True)
    ]


def _field_type(spec: FeatureSpec) -> Any:
    base: Any
    if spec.type == "category":
        base = Literal[tuple(spec.values or ())]
    elif spec.type == "bool":
        base = Annotated[bool, Field(strict=True)]
    elif spec.type == "int":
        base = Annotated[int, Field(strict=True, ge=_int(spec.min), le=_int(spec.max))]
    else:
        base = Annotated[float, Field(strict=True, ge=spec.min, le=spec.max, allow_inf_nan=False)]
    return base | None if spec.nullable else base


def _int(v: float | None) -> int | None:
    return None if v is None else int(v)


def row_model(spec: ServingSpec) -> type[BaseModel]:
    """A pydantic model of one input row: one required field per feature, nothing else."""
    fields: dict[str, Any] = {
        name: (_field_type(f), None if f.nullable else ...) for name, f in spec.features.items()
    }
    return create_model("Row", __config__=ConfigDict(extra="forbid"), **fields)
