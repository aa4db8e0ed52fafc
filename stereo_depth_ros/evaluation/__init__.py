"""Metrics and dataset evaluation."""
