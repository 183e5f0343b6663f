"""The distributed engine: OpenRLHF 0.11.2's PPO-Ray stack with lmmr1's plug-ins.

Imported only when `engine: openrlhf` is used; it needs the `openrlhf` extra (and, on GPUs, flash-attn's
CUDA build).
"""
