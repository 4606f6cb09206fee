"""The quantile levels a model is trained on by default: a module of its own, so the service's request
schema reads the widest interval it allows without importing the model code (numpy, the tree libraries)."""

from __future__ import annotations

DEFAULT_QUANTILES: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
