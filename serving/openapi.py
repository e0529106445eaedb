"""The lean runtime's OpenAPI document: the same request and answer schemas as the BentoML service.

Built from the same pydantic models (`schema.row_model`, `schema.PredictResponse`) and finished by
the same `guard.documented` that rewrites the BentoML service's document (one of `row`/`rows`,
never null, 400 and 415 in `{"error", "detail"}`), so a client generated from either document
talks to both. Imported only when `/docs.json` is asked for: pydantic is not on a cold start's path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, create_model
from pydantic.json_schema import models_json_schema

from launchbay.serving.guard import documented
from launchbay.serving.schema import PredictResponse, row_model
from launchbay.serving.spec import ServingSpec

_REF = "#/components/schemas/{model}"


def document(model_dir: Path, max_rows: int) -> dict[str, Any]:
    """The OpenAPI document of the model in `model_dir` as the lean runtime serves it."""
    spec = ServingSpec.read(model_dir)
    row = row_model(spec)
    fields: dict[str, Any] = {
        "rows": (Annotated[list[row] | None, Field(min_length=1, max_length=max_rows)], None),  # type: ignore[valid-type]
        "row": (row | None, None),
    }
    request = create_model("PredictInput", **fields)
    (_, _), defs = models_json_schema(
        [(request, "validation"), (PredictResponse, "serialization")], ref_template=_REF
    )
    schemas = defs.get("$defs", {})
    health = {"get": {"responses": {"200": {"description": "Successful Response"}}}}
    doc = {
        "openapi": "3.0.2",  # what BentoML 1.4 declares: clients see one dialect
        "info": {"title": f"launchbay-{spec.model}", "version": f"v{spec.version}"},
        "paths": {
            "/predict": {
                "post": {
                    "summary": "Answer one row (`row`) or a batch (`rows`)",
                    "requestBody": {
                        "content": {
                            "application/json": {"schema": {"$ref": _REF.format(model="PredictInput")}}
                        }
                    },
                    "responses": {
                        "200": {
                            "description": "Successful Response",
                            "content": {
                                "application/json": {"schema": {"$ref": _REF.format(model="PredictResponse")}}
                            },
                        }
                    },
                }
            },
            **{p: health for p in ("/healthz", "/livez", "/readyz")},
        },
        "components": {"schemas": schemas},
    }
    return documented(doc)
