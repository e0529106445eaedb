"""The names of the local gateway's metrics, defined once for the gateway that exports them and
the queries that read them (a renamed series must not silently turn an analysis into "no data")."""

REQUESTS = "launchbay_gateway_requests"
"""Counter per version, role (primary, shadow) and status class (2xx, 4xx, 5xx)."""
DURATION = "launchbay_gateway_request_duration_seconds"
"""Histogram per version and role: how long the gateway waited for the version's answer."""
INFLIGHT = "launchbay_gateway_inflight"
CANARY_WEIGHT = "launchbay_gateway_canary_weight"
CANARY_RETRIES = "launchbay_gateway_canary_retries"
COLD_STARTS = "launchbay_gateway_cold_starts"
COLD_START_SECONDS = "launchbay_gateway_cold_start_seconds"
COLD_START_FAILURES = "launchbay_gateway_cold_start_failures"
SCALED_TO_ZERO = "launchbay_gateway_scaled_to_zero"
REJECTED = "launchbay_gateway_rejected_requests"
"""Counter per reason: client mistakes answered by the gateway itself, never counted to a version."""
ROUTE_REFUSALS = "launchbay_gateway_route_refusals"
SHADOW_DROPPED = "launchbay_shadow_dropped"
SHADOW_COMPARED = "launchbay_shadow_compared_rows"
"""Counter per (stable, candidate): rows answered by both."""
SHADOW_DISAGREEMENTS = "launchbay_shadow_disagreement_rows"
"""Counter per (stable, candidate): rows whose predicted class differs."""
SHADOW_SCORE_DIFF = "launchbay_shadow_score_diff"
"""Histogram per (stable, candidate): the absolute score difference of each compared row."""


def total(counter: str) -> str:
    """How Prometheus exposes a counter named `counter`."""
    return f"{counter}_total"
