"""Request and response types generated from a model's features.

Every rule the data gate applies to training data applies to a request: the type (strict: "12" is
not a number, 1 is not a boolean), the range, the allowed categories, nulls only where the feature
is nullable, no NaN or infinity, no unknown fields. A request breaking one gets a 400 that names
the field; nothing reaches the model that the model was not trained to see.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from launchbay.config import FeatureSpec
from launchbay.serving.spec import ServingSpec


class Prediction(BaseModel):
    """The model's answer for one row."""

    prediction: int = Field(description="predicted class at the decision threshold")
    score: float = Field(description="probability of the positive class")


class PredictResponse(BaseModel):
    """Answers for every row of a request, with the model version that gave them."""

    model: str
    version: str
    predictions: list[Prediction]


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
