"""How a version is served: what `launchbay.serving` reads."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from launchbay.config.base import Duration, Section


class OnnxSection(Section):
    """The ONNX variant made at sign time and served where it matches the native model."""

    enabled: bool = True
    """Convert the model to ONNX (skl2onnx; onnxmltools for XGBoost/LightGBM) when it converts."""
    tolerance: Annotated[float, Field(gt=0, le=0.1)] = 1e-5
    """Largest difference of any class score (a regressor: of the value, relative to max(1,
    |value|)) from the native model's on the held-out rows; the predicted classes must agree too."""


class ServingSection(Section):
    """How the model's HTTP service behaves."""

    runtime: Literal["auto", "bentoml", "lean"] = "auto"
    """Which server runs a version on the local target: `bentoml` (the Bento's BentoML service),
    `lean` (uvicorn + the ONNX variant, or the native model, with the same API, schema, metrics
    and signature check: it starts in well under a second and keeps 95% of the leanest Python
    stack's throughput, where BentoML keeps 17% with a 10x p99) or `auto`: lean, unless
    `workers` asks for more than one process per server (BentoML's)."""
    onnx: OnnxSection = OnnxSection()

    max_batch_size: Annotated[int, Field(ge=1, le=10_000)] = 64
    """Most rows accepted in one request, and most rows scored in one model call."""
    batch_wait_ms: Annotated[float, Field(ge=0, le=1000)] = 2.0
    """How long a request may wait for others to share a model call (adaptive batching)."""
    workers: Annotated[int, Field(ge=1, le=64)] = 1
    """Processes per local server (BentoML's workers; the lean runtime runs one)."""
    min_instances: Annotated[int, Field(ge=0, le=1)] = 1
    """0: the local target stops a version's server after `idle_timeout` without requests and
    cold-starts it on the next one (scale to zero)."""
    idle_timeout: Duration = 300.0
    cold_start_timeout: Duration = 60.0
    """How long a request waits for a cold start before it gets 503 with Retry-After."""
    measure: bool = False
    """Add a `measure` step after `package`: cold start, latency under load, throughput within the
    p95 SLO, memory and size of each candidate (what `launchbay advise` decides with); ~25 s."""

    @property
    def server(self) -> Literal["bentoml", "lean"]:
        """The runtime a local server of this config runs (`runtime`, with `auto` resolved)."""
        if self.runtime == "auto":
            return "lean" if self.workers == 1 else "bentoml"
        return self.runtime
