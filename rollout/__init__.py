"""Progressive delivery: phases and their transitions, rollout steps as data, the ledger, the controller.

A release (one model version on its way to users) moves through phases recorded in the ledger;
the controller's idempotent `tick` reads the ledger, measures, decides and acts through a Target
(local processes, Kubernetes, Knative) and a MetricsProvider (Prometheus).
"""
