"""Engines that run a stage: `local` (one process, one device) and `openrlhf` (Ray cluster)."""
