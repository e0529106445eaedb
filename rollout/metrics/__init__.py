"""Metrics providers: where analysis gets its numbers (Prometheus is the real one)."""
