"""Shipped weights (state dicts; see docs/models.md), read with importlib.resources."""
