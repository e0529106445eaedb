"""Targets: the Target seam (`base`) and the cluster implementations (kubernetes, knative, function)."""
