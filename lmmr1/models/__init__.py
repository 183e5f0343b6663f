"""Model builders (the tiny Qwen2.5-VL for tests and demos)."""
