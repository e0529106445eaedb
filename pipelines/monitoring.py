"""Prometheus for launchbay in a cluster: one source for the raw files and the Operator's objects.

The model pods' and the controller's metrics are scraped by either a plain Prometheus
(`scrape.yml` + `rules.yml`, a ConfigMap) or the Prometheus Operator (`PodMonitor` +
`PrometheusRule`). Both give the same labels -- `model`, `version` from the pod labels,
`job="launchbay-controller"` for the controller -- so the same alerts, dashboard and analysis
queries work with either.
"""

from __future__ import annotations

from typing import Any

from launchbay.config import LaunchbayConfig

CONTROLLER_JOB = "launchbay-controller"
JOB_LABEL = "launchbay.io/job"
"""A pod label whose value is the scrape job (the Operator's `jobLabel`): the alert's `up{job=}`."""
METRICS_PORT = 9100
"""The controller's metrics port (named `metrics`)."""

_PREDICT = 'endpoint="/predict"'
_REQUESTS = f"bentoml_service_request_total{{{_PREDICT}"
RULES: list[dict[str, Any]] = [
    {
        "alert": "LaunchbayCanaryFailingSLO",
        # A version answering more than 1% errors over 2 minutes while it is not the only one
        # serving: the controller should roll it back within seconds; if this fires, it did not.
        "expr": (
            "(\n"
            f'  sum by (model, version) (rate({_REQUESTS}, http_response_code=~"5.."}}[2m]))\n'
            "  /\n"
            f"  sum by (model, version) (rate({_REQUESTS}}}[2m]))\n"
            ") > 0.01\n"
            "and on (model)\n"
            f"count by (model) (count by (model, version) ({_REQUESTS}}})) > 1\n"
        ),
        "for": "2m",
        "labels": {"severity": "page"},
        "annotations": {
            "summary": "{{ $labels.model }} version {{ $labels.version }} fails "
            "{{ $value | humanizePercentage }} of requests during a rollout",
            "runbook": "launchbay status; launchbay rollback {{ $labels.model }} "
            "--reason 'alert LaunchbayCanaryFailingSLO'",
        },
    },
    {
        "alert": "LaunchbayRollbackHappened",
        "expr": 'increase(launchbay_release_phase_changes_total{phase="rolled-back"}[10m]) > 0',
        "labels": {"severity": "info"},
        "annotations": {
            "summary": "a release of {{ $labels.model }} was rolled back",
            "runbook": "launchbay history {{ $labels.model }}",
        },
    },
    {
        "alert": "LaunchbayControllerDown",
        "expr": f'absent(up{{job="{CONTROLLER_JOB}"}} == 1)',
        "for": "5m",
        "labels": {"severity": "warn"},
        "annotations": {
            "summary": "no launchbay controller is running: releases do not advance "
            "(rollback by hand still works)"
        },
    },
]


def rules_file() -> dict[str, Any]:
    """`rules.yml` for a plain Prometheus (what `promtool check rules` reads)."""
    return {"groups": [{"name": "launchbay", "rules": RULES}]}


def _pod_label(name: str) -> str:
    return "__meta_kubernetes_pod_label_" + "".join(c if c.isalnum() else "_" for c in name)


def scrape_file(cfg: LaunchbayConfig) -> dict[str, Any]:
    """`scrape.yml`: the model pods (`model`, `version` from their labels) and the controller."""
    ns = {"role": "pod", "namespaces": {"names": [cfg.kubernetes.namespace]}}
    return {
        "scrape_configs": [
            {
                "job_name": "launchbay-models",
                "scrape_interval": "5s",
                "honor_labels": True,  # the service labels its prediction metrics with the version itself
                "kubernetes_sd_configs": [ns],
                "relabel_configs": [
                    {
                        "source_labels": [_pod_label("app.kubernetes.io/managed-by")],
                        "regex": "launchbay",
                        "action": "keep",
                    },
                    {
                        "source_labels": ["__meta_kubernetes_pod_container_port_name"],
                        "regex": "http",
                        "action": "keep",
                    },
                    *_labels_from_pod(),
                ],
            },
            {
                "job_name": CONTROLLER_JOB,
                "scrape_interval": "5s",
                "kubernetes_sd_configs": [ns],
                "relabel_configs": [
                    {
                        "source_labels": [_pod_label("app.kubernetes.io/component")],
                        "regex": "controller",
                        "action": "keep",
                    },
                    {
                        "source_labels": ["__meta_kubernetes_pod_container_port_name"],
                        "regex": "metrics",
                        "action": "keep",
                    },
                ],
            },
        ]
    }


def _labels_from_pod() -> list[dict[str, Any]]:
    return [
        {"source_labels": [_pod_label("app.kubernetes.io/name")], "target_label": "model"},
        {"source_labels": [_pod_label("launchbay.io/version")], "target_label": "version"},
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
    ]


def operator_objects(cfg: LaunchbayConfig) -> list[dict[str, Any]]:
    """PodMonitors (models, controller) and the PrometheusRule, for Prometheus Operator users."""
    namespace = cfg.kubernetes.namespace
    meta = {"namespace": namespace, "labels": {"app.kubernetes.io/part-of": "launchbay"}}
    relabel = [
        {"sourceLabels": r["source_labels"], "targetLabel": r["target_label"]} for r in _labels_from_pod()
    ]
    return [
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PodMonitor",
            "metadata": {"name": "launchbay-models", **meta},
            "spec": {
                "selector": {"matchLabels": {"app.kubernetes.io/managed-by": "launchbay"}},
                "podMetricsEndpoints": [
                    {
                        "port": "http",
                        "path": "/metrics",
                        "interval": "5s",
                        "honorLabels": True,
                        "relabelings": relabel,
                    }
                ],
            },
        },
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PodMonitor",
            "metadata": {"name": CONTROLLER_JOB, **meta},
            "spec": {
                "jobLabel": JOB_LABEL,
                "selector": {"matchLabels": {"app.kubernetes.io/component": "controller"}},
                "podMetricsEndpoints": [{"port": "metrics", "path": "/metrics", "interval": "5s"}],
            },
        },
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PrometheusRule",
            "metadata": {"name": "launchbay", **meta},
            "spec": rules_file(),
        },
    ]
