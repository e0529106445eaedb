"""Candidates that are bad only in production, for the rollout's fault tests.

Each trains, evaluates and signs like the example model and misbehaves only once served (the
model server sets $LAUNCHBAY_MODEL), which is how such bugs reach a rollout: every offline gate
passed. This module is copied into the test project, so the served model imports it from there.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import fraud_model as fraud
import numpy as np


def _served() -> bool:
    return "LAUNCHBAY_MODEL" in os.environ


class Faulty:
    """The example model with a fault that shows only when served."""

    def __init__(self, inner: Any, fault: str) -> None:
        self.inner = inner
        self.fault = fault

    @property
    def classes_(self) -> Any:
        return self.inner.classes_

    def predict_proba(self, x: Any) -> Any:
        proba = self.inner.predict_proba(x)
        if not _served():
            return proba
        if self.fault == "errors" and random.random() < 0.2:
            raise RuntimeError("injected fault: this candidate fails 20% of requests")
        if self.fault == "slow":
            time.sleep(0.04)  # stable answers in a few ms: this is well over 5x slower
        if self.fault == "disagree":
            return np.asarray(proba)[:, ::-1]  # the classes swapped
        # Healthy until the trigger file appears, then half of the requests fail.
        triggered = self.fault == "trigger" and Path(os.environ.get("FAULT_TRIGGER", "/nonexistent")).exists()
        if triggered and random.random() < 0.5:
            raise RuntimeError("injected fault: triggered")
        return proba

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state.get("fault") == "crash" and _served():
            raise ImportError("libcuda.so.1: cannot open shared object file (injected start-up crash)")
        self.__dict__.update(state)


def _train(fault: str) -> Any:
    def train(features: Any, target: Any, params: dict[str, Any]) -> Faulty:
        return Faulty(fraud.train(features, target, params), fault)

    return train


train_errors = _train("errors")
train_slow = _train("slow")
train_crash = _train("crash")
train_disagree = _train("disagree")
train_trigger = _train("trigger")
