"""Evaluation: detection, tracking and anomaly metrics and dataset readers."""
