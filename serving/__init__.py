"""Serving: the BentoML service for a registered model, its request schema, and packaging into a Bento."""
