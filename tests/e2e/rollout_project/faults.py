"""Candidates that are bad only in production, for the rollout's fault tests.

Each trains, evaluates and signs like the example model and misbehaves only once served (the
model server sets $LAUNCHBAY_MODEL), which is how such bugs reach a rollout: every offline gate
passed. This module is copied into the test project, so the served model imports it from there.
"""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path
from typing import Any

import fraud_model as fraud
import numpy as np

_ONE_AT_A_TIME = threading.Lock()


def _served() -> bool:
    return "LAUNCHBAY_MODEL" in os.environ


class Faulty:
    """The example model with a fault that shows only when served."""

    def __init__(self, inner: Any, fault: str) -> None:
        self.inner = inner
        self.fault = fault
        # The trigger file's path is part of the model: a model server is given only the
        # environment it needs (launchbay scrubs the rest), so it could not read $FAULT_TRIGGER.
        self.trigger = os.environ.get("FAULT_TRIGGER", "/nonexistent")

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
        if self.fault == "fragile":
            with _ONE_AT_A_TIME:  # ~40 answers a second, however many arrive: fine at a quiet peak
                time.sleep(0.025)
        if self.fault == "disagree":
            return np.asarray(proba)[:, ::-1]  # the classes swapped
        if self.fault == "late":
            return self._late(np.asarray(proba))
        # Healthy until the trigger file appears, then half of the requests fail.
        triggered = self.fault == "trigger" and Path(self.trigger).exists()
        if triggered and random.random() < 0.5:
            raise RuntimeError("injected fault: triggered")
        return proba

    def _late(self, proba: Any) -> Any:
        """Healthy until the trigger file appears; then the fault it names (the benchmark's):
        `errors:0.2` (that share fails), `slow:0.02` (each answer waits that long), `flip:0.1` (that
        share of rows answers the other class)."""
        try:
            kind, _, value = Path(self.trigger).read_text().strip().partition(":")
        except OSError:
            return proba
        if kind == "errors" and random.random() < float(value):
            raise RuntimeError("injected fault: triggered errors")
        if kind == "slow":
            time.sleep(float(value))
        if kind == "flip":
            flip = np.random.random(len(proba)) < float(value)
            proba = np.where(flip[:, None], proba[:, ::-1], proba)
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
train_late = _train("late")
train_fragile = _train("fragile")
