"""Quantile ETA models, conformal calibration, evaluation, MLflow tracking and the promotion gate."""
