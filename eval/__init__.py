"""Evaluation harness: benchmarks, football episodes, metrics, reports."""
