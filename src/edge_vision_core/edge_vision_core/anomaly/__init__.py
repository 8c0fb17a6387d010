"""Anomaly detection: patch features, normal-appearance models, scores and heatmaps."""
