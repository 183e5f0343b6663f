"""lmmr1: rule-based RL for vision-language models."""

__version__ = "0.1.0"
