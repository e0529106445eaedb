"""The launchbay model service (BentoML 1.4): verify the model, load it once, validate, batch, predict.

Which model it serves comes from `$LAUNCHBAY_MODEL` (a BentoML model tag, baked into the Bento);
which public keys it trusts from `$LAUNCHBAY_TRUSTED_KEYS` (set by the deployment, never shipped in
the artefact). A model whose signature does not verify makes the service refuse to start.

No `from __future__ import annotations`: BentoML reads the API's parameter types at runtime.
"""

import os
import signal
from pathlib import Path
from typing import Annotated, Any

import bentoml
import numpy as np
from pydantic import Field

from launchbay.checks.signature import verify
from launchbay.serving.answer_log import AnswerLogMiddleware, kept_from_env, size_from_env
from launchbay.serving.batcher import MicroBatcher
from launchbay.serving.guard import RequestGuard
from launchbay.serving.lean_core import load_scorer
from launchbay.serving.metric_names import PREDICTION_SCORE, PREDICTIONS, total
from launchbay.serving.package import signed_dir
from launchbay.serving.request_sample import RequestSampleMiddleware
from launchbay.serving.request_sample import from_env as capture_from_env
from launchbay.serving.schema import PredictResponse, ValuePrediction, answers, row_model
from launchbay.serving.spec import ServingSpec

MODEL_ENV = "LAUNCHBAY_MODEL"
TRUSTED_KEYS_ENV = "LAUNCHBAY_TRUSTED_KEYS"

TAG = os.environ.get(MODEL_ENV)
if not TAG:
    raise RuntimeError(
        f"{MODEL_ENV} is not set: it names the BentoML model to serve (e.g. fraud-detector:v3)"
    )
SPEC = ServingSpec.read(signed_dir(bentoml.models.get(TAG).path))
MAX_BATCH = int(os.environ.get("LAUNCHBAY_MAX_BATCH", "64"))
BATCH_WAIT_MS = float(os.environ.get("LAUNCHBAY_BATCH_WAIT_MS", "2"))
WORKERS = int(os.environ.get("LAUNCHBAY_WORKERS", "1"))
Row = row_model(SPEC)

SCORES = bentoml.metrics.Histogram(
    name=PREDICTION_SCORE,
    documentation="Scores returned per version (binary: positive class; multiclass: predicted class)",
    labelnames=["model", "version"],
    buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 1.0),
)
CLASSES = bentoml.metrics.Counter(
    name=total(PREDICTIONS),
    documentation="Predictions returned, per model version and predicted class",
    labelnames=["model", "version", "predicted_class"],
)


@bentoml.service(name=f"launchbay-{SPEC.model}", workers=WORKERS, traffic={"timeout": 30})
class ModelService:
    """Serves one signed model version."""

    model_ref = bentoml.models.BentoModel(TAG)

    def __init__(self) -> None:
        try:
            model_dir = signed_dir(self.model_ref.path)
            keys = [Path(p) for p in os.environ.get(TRUSTED_KEYS_ENV, "").split(os.pathsep) if p]
            result = verify(model_dir, keys)
            if not result.verdict.ok:
                raise RuntimeError(f"refusing to serve {TAG}: {result.message}")
            # The ONNX variant where the signed model carries one (it matched the native model on
            # the held-out rows), as the lean runtime serves it.
            self.scorer, self.variant = load_scorer(model_dir, list(SPEC.features))
        except BaseException:
            # A worker that exits is restarted by BentoML's arbiter, which would then linger forever
            # serving nothing; a model that cannot be trusted or loaded stops the whole server, so
            # that whoever started it sees it die (the local target marks the release failed).
            if os.environ.get("LAUNCHBAY_STOP_SERVER_ON_REFUSAL", "1") == "1":
                os.kill(os.getppid(), signal.SIGTERM)
            raise
        self.features = list(SPEC.features)
        self.batcher = MicroBatcher(self._scores, MAX_BATCH, BATCH_WAIT_MS / 1000)

    def _scores(self, rows: list[list[Any]]) -> np.ndarray:
        return self.scorer(rows)

    @bentoml.api
    async def predict(
        self,
        rows: Annotated[list[Row] | None, Field(min_length=1, max_length=MAX_BATCH)] = None,  # type: ignore[valid-type]
        row: Row | None = None,  # type: ignore[valid-type]
    ) -> PredictResponse:
        """Answer one row (`row`) or a batch (`rows`, up to the configured maximum): a class and
        its score (classification, with every class's score for multiclass), or a value."""
        if (rows is None) == (row is None):
            raise bentoml.exceptions.InvalidArgument(
                "give exactly one of `row` (one object) or `rows` (a list)"
            )
        items = rows if rows is not None else [row]
        values = [[getattr(r, f) for f in self.features] for r in items]
        predictions = answers(SPEC, await self.batcher.score(values))
        score_metric = SCORES.labels(model=SPEC.model, version=SPEC.version)
        for p in predictions:
            if isinstance(p, ValuePrediction):
                continue  # a value has no class and no score to count
            score_metric.observe(p.score)
            CLASSES.labels(model=SPEC.model, version=SPEC.version, predicted_class=str(p.prediction)).inc()
        return PredictResponse(model=SPEC.model, version=SPEC.version, predictions=predictions)


# Client mistakes are 4xx in the documented shape, and the OpenAPI document says what is accepted.
ModelService.add_asgi_middleware(  # type: ignore[attr-defined]  # a Service, typed as the class
    RequestGuard, inputs={"/predict": frozenset({"row", "rows"})}
)
# In a cluster's shadow phase: each answer kept with its request id, for the controller's join.
if ANSWERS := size_from_env(os.environ):
    ModelService.add_asgi_middleware(  # type: ignore[attr-defined]
        AnswerLogMiddleware, size=ANSWERS, kept=kept_from_env(os.environ)
    )
# And a sample of the requests it answers, replayed to a candidate before its shadow phase.
if (CAPTURE := capture_from_env(os.environ)).size:
    ModelService.add_asgi_middleware(RequestSampleMiddleware, capture=CAPTURE)  # type: ignore[attr-defined]
