"""Prometheus as a MetricsProvider, through prometheus-api-client."""

from __future__ import annotations

import math

from launchbay.rollout.metrics.base import Measurement


class PrometheusProvider:
    """Instant PromQL queries against a Prometheus server.

    An empty result, or NaN (what `histogram_quantile` and ratios give over zero samples), is *no
    data*; a result with several series is an error (the query must aggregate to one number);
    a connection problem or a bad query is an error carrying Prometheus' message.
    """

    def __init__(self, url: str, timeout: float = 2.0) -> None:
        from prometheus_api_client import PrometheusConnect
        from urllib3.util.retry import Retry

        self.url = url
        self.timeout = timeout
        # No retries inside a query: the client's default (3 retries with backoff) turns a dead
        # Prometheus into ~10 s per query, and the controller already asks again every interval.
        self._client = PrometheusConnect(
            url=url, disable_ssl=True, retry=Retry(total=0, connect=0, read=0), timeout=timeout
        )

    def query(self, query: str) -> Measurement:
        """Evaluate an instant query."""
        try:
            result = self._client.custom_query(query, params={"timeout": f"{self.timeout:g}s"})
        except Exception as exc:  # the client raises connection, HTTP and parse errors of many types
            return Measurement.failed(query, f"{type(exc).__name__}: {exc}")
        if not result:
            return Measurement(None, None, query)
        if len(result) > 1:
            return Measurement.failed(query, f"expected one series, got {len(result)}: aggregate the query")
        try:
            value = float(result[0]["value"][1])
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            return Measurement.failed(query, f"unexpected answer {result[0]!r}: {exc}")
        return Measurement(None if math.isnan(value) else value, None, query)
