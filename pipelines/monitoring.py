"""Prometheus for launchbay in a cluster: the chart's scrape config, alert rules and dashboard.

The model pods' and the controller's metrics are scraped by either a plain Prometheus
(`scrape.yml` + `rules.yml`, the chart's ConfigMap) or the Prometheus Operator (the chart's
`PodMonitor`s + `PrometheusRule`). Both give the same labels -- `namespace`, and `model`,
`version` from the pod labels, `job="launchbay-controller"` for the controller -- so the same
alerts, dashboard and analysis queries work with either, for every team at once.
`chart_files()` is what `scripts/chart_files.py` writes into charts/launchbay/files/.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

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
            f'  sum by (namespace, model, version) (rate({_REQUESTS}, http_response_code=~"5.."}}[2m]))\n'
            "  /\n"
            f"  sum by (namespace, model, version) (rate({_REQUESTS}}}[2m]))\n"
            ") > 0.01\n"
            "and on (namespace, model)\n"
            f"count by (namespace, model) (count by (namespace, model, version) ({_REQUESTS}}})) > 1\n"
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


def scrape_file() -> dict[str, Any]:
    """`scrape.yml`: launchbay's model pods in every namespace (`namespace`, and `model`, `version`
    from their labels) and the controller. Pods are kept by launchbay's labels, not by namespace:
    a team onboarded later needs no change here."""
    return {
        "scrape_configs": [
            {
                "job_name": "launchbay-models",
                "scrape_interval": "5s",
                "honor_labels": True,  # the service labels its prediction metrics with the version itself
                "kubernetes_sd_configs": [{"role": "pod"}],
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
                "kubernetes_sd_configs": [{"role": "pod"}],
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


def dashboard() -> str:
    """The Grafana dashboard (metrics of the model pods and the controller, none of the local gateway)."""
    return resources.files("launchbay.pipelines").joinpath("templates/grafana-dashboard.json").read_text()


def chart_files() -> dict[str, str]:
    """charts/launchbay/files/: path -> text (a test checks they are current)."""
    import yaml

    class Dumper(yaml.SafeDumper):
        """Multi-line strings (the rules' expressions) as blocks, whatever else changed SafeDumper."""

    def text(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)

    Dumper.add_representer(str, text)

    def dump(doc: Any) -> str:
        return yaml.dump(doc, Dumper=Dumper, sort_keys=False, width=1000)

    return {
        "files/scrape.yml": dump(scrape_file()),
        "files/rules.yml": dump(rules_file()),
        "files/grafana-dashboard.json": json.dumps(json.loads(dashboard()), indent=2) + "\n",
    }
