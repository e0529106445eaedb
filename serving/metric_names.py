"""The names of the metrics a model server exports about its answers, defined once.

Both runtimes (the BentoML service and the lean runtime) export them, and the rollout's queries and
users' metrics in launchbay.yaml read them (`launchbay_predictions_total{predicted_class="1"}`).
"""

PREDICTIONS = "launchbay_predictions"
"""Counter (exposed as `launchbay_predictions_total`): answers per model, version, predicted class."""
PREDICTION_SCORE = "launchbay_prediction_score"
"""Histogram: the score of each answer (binary: the positive class's; multiclass: the predicted)."""


def total(counter: str) -> str:
    """How Prometheus exposes a counter named `counter`."""
    return f"{counter}_total"
