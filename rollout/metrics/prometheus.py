"""Prometheus as a MetricsProvider, through prometheus-api-client."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

from launchbay.rollout.metrics.base import Measurement, Series

TOKEN_ENV = "LAUNCHBAY_PROMETHEUS_TOKEN"
USER_ENV, PASSWORD_ENV = "LAUNCHBAY_PROMETHEUS_USER", "LAUNCHBAY_PROMETHEUS_PASSWORD"
CA_ENV = "LAUNCHBAY_PROMETHEUS_CA_FILE"


@dataclass(frozen=True)
class Access:
    """How to reach a Prometheus: TLS verification (on unless `insecure`), a CA file, credentials.

    Credentials come from the environment (a Secret in a cluster), never from the config file.
    """

    ca_file: str | None = None
    insecure: bool = False
    token: str | None = None
    basic: tuple[str, str] | None = None

    @classmethod
    def from_env(cls, ca_file: str | None = None, insecure: bool = False) -> Access:
        """`$LAUNCHBAY_PROMETHEUS_TOKEN`, else `_USER`/`_PASSWORD`; `$LAUNCHBAY_PROMETHEUS_CA_FILE`."""
        user, password = os.environ.get(USER_ENV), os.environ.get(PASSWORD_ENV)
        return cls(
            ca_file=ca_file or os.environ.get(CA_ENV) or None,
            insecure=insecure,
            token=os.environ.get(TOKEN_ENV) or None,
            basic=(user, password or "") if user else None,
        )


class PrometheusProvider:
    """Instant PromQL queries against a Prometheus server.

    An empty result, or NaN (what `histogram_quantile` and ratios give over zero samples), is *no
    data*; a result with several series is an error (the query must aggregate to one number);
    a connection problem or a bad query is an error carrying Prometheus' message; 401/403 say
    which credentials to give.
    """

    def __init__(self, url: str, timeout: float = 2.0, access: Access | None = None) -> None:
        import requests
        from prometheus_api_client import PrometheusConnect
        from urllib3.util.retry import Retry

        access = access or Access()
        self.url = url
        self.timeout = timeout
        session = requests.Session()
        # Verified TLS unless told otherwise; the CA file replaces the system's bundle for this
        # server only. trust_env off: REQUESTS_CA_BUNDLE or a proxy variable must not override it.
        session.trust_env = False
        session.verify = False if access.insecure else (access.ca_file or True)
        headers = {"Authorization": f"Bearer {access.token}"} if access.token else None
        # No retries inside a query: the client's default (3 retries with backoff) turns a dead
        # Prometheus into ~10 s per query, and the controller already asks again every interval.
        self._client = PrometheusConnect(
            url=url,
            headers=headers,
            auth=access.basic,
            session=session,
            retry=Retry(total=0, connect=0, read=0),
            timeout=timeout,
        )

    def query(self, query: str) -> Measurement:
        """Evaluate an instant query."""
        try:
            result = self._client.custom_query(query, params={"timeout": f"{self.timeout:g}s"})
        except Exception as exc:  # the client raises connection, HTTP and parse errors of many types
            return Measurement.failed(query, _explain(self.url, exc))
        if not result:
            return Measurement(None, None, query)
        if len(result) > 1:
            return Measurement.failed(query, f"expected one series, got {len(result)}: aggregate the query")
        try:
            value = float(result[0]["value"][1])
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            return Measurement.failed(query, f"unexpected answer {result[0]!r}: {exc}")
        return Measurement(None if math.isnan(value) else value, None, query)


    def query_range(self, query: str, start: float, end: float, step: float) -> Series:
        """Evaluate `query` at every `step` seconds from `start` to `end` (the timelines of a
        release's page); never raises for a backend problem."""
        from datetime import UTC, datetime

        try:
            result = self._client.custom_query_range(
                query,
                start_time=datetime.fromtimestamp(start, UTC),
                end_time=datetime.fromtimestamp(end, UTC),
                step=f"{max(step, 0.001):g}s",
            )
        except Exception as exc:  # as in `query`: the client raises errors of many types
            return Series((), _explain(self.url, exc), query)
        if len(result) > 1:
            return Series((), f"expected one series, got {len(result)}: aggregate the query", query)
        points = []
        for t, v in result[0]["values"] if result else []:
            value = float(v)
            if not math.isnan(value) and not math.isinf(value):
                points.append((float(t), value))
        return Series(tuple(points), None, query)


def _explain(url: str, exc: Exception) -> str:
    text = f"{type(exc).__name__}: {exc}"
    m = re.search(r"HTTP Status Code (401|403)", str(exc))
    if m:
        what = "rejected the credentials" if m[1] == "403" else "needs credentials"
        return (
            f"Prometheus at {url} {what} ({m[1]}): set ${TOKEN_ENV} (bearer token) or "
            f"${USER_ENV}/${PASSWORD_ENV} (basic auth), e.g. from the settings Secret"
        )
    if "SSLError" in text or "CERTIFICATE_VERIFY_FAILED" in text:
        return (
            f"Prometheus at {url}: TLS verification failed ({exc}); give its CA with "
            f"rollout.prometheus_ca_file or ${CA_ENV}"
        )
    return text
