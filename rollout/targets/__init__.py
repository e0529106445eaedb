"""Targets: where a release's serving units run and how traffic reaches them (local, kubernetes, knative)."""
