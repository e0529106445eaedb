"""Ceiling for the serving benchmark: the leanest Python stack doing the same work per request.

uvicorn (uvloop, httptools) + Starlette, the same pydantic validation of each row as the BentoML
service (`schema.row_model`), the same model call (the signed model's ONNX variant, or its native
model), the same answers. No signature check, no metrics, no batching, no error shapes: what
launchbay's runtimes add on top of this is what the benchmark's ratios measure.
"""

import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError, create_model
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from launchbay.serving.lean_core import answers, load_scorer
from launchbay.serving.schema import row_model
from launchbay.serving.spec import ServingSpec

MODEL_DIR = Path(os.environ["CEILING_MODEL_DIR"])
SPEC = ServingSpec.read(MODEL_DIR)
FEATURES = list(SPEC.features)
ROW = row_model(SPEC)
BODY = create_model("Body", rows=(list[ROW], ...))  # type: ignore[valid-type]
SCORER, VARIANT = load_scorer(MODEL_DIR, FEATURES)
SPEC_DOC: dict[str, Any] = SPEC.model_dump(mode="json")


async def predict(request: Request) -> Response:
    try:
        body = BODY.model_validate_json(await request.body())
    except ValidationError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    rows = [[getattr(r, f) for f in FEATURES] for r in body.rows]  # type: ignore[attr-defined]
    out = answers(SPEC_DOC, SCORER(rows))
    return JSONResponse({"model": SPEC.model, "version": SPEC.version, "predictions": out})


app = Starlette(routes=[Route("/predict", predict, methods=["POST"])])
