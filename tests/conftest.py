"""Session-wide fixtures: the tiny Qwen2.5-VL (built once), and the one test double this machine needs.

The test double: flash-attn's CUDA extension module `flash_attn_2_cuda`. OpenRLHF 0.11.2 hard-requires
flash-attn and imports it at module level (`openrlhf.models.ring_attn_utils` imports
`flash_attn.bert_padding`, which is pure torch and works for real). The pure-Python flash-attn build that
lmmr1 installs on CPU machines lacks only the compiled CUDA kernels; `import flash_attn` then fails on
`flash_attn_2_cuda`. We register an empty module under that name, so everything that merely imports it
loads, and anything that would call a CUDA kernel fails loudly (AttributeError on the empty module).

We also make `flash_attn.ops.triton.cross_entropy` unimportable: OpenRLHF's `log_probs_from_logits` tries
it first and falls back to plain torch only on ImportError; the Triton kernel crashes on CPU tensors.
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

# Offline, always: a test that tries to download fails instead of silently depending on the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Keep vLLM's engine core in this process (one engine shared by the whole session).
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

import pytest


def install_flash_attn_cuda_test_double() -> None:
    """TEST DOUBLE for hardware this machine lacks: an empty `flash_attn_2_cuda` (flash-attn's CUDA
    extension) and a blocked Triton cross-entropy, so the real `openrlhf` modules import on CPU."""
    if "flash_attn_2_cuda" not in sys.modules:
        double = types.ModuleType("flash_attn_2_cuda")
        double.__doc__ = "lmmr1 TEST DOUBLE: flash-attn's CUDA extension is absent on CPU machines."
        sys.modules["flash_attn_2_cuda"] = double
    sys.modules["flash_attn.ops.triton.cross_entropy"] = None  # ImportError -> OpenRLHF's torch fallback


@pytest.fixture(scope="session")
def openrlhf_cpu() -> None:
    """Makes the real OpenRLHF 0.11.2 importable on this CPU machine (see the module docstring)."""
    install_flash_attn_cuda_test_double()


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """The default tiny Qwen2.5-VL checkpoint directory, built once and cached (see lmmr1.models.tiny)."""
    from lmmr1.models.tiny import tiny_qwen25vl

    return tiny_qwen25vl()


@pytest.fixture(scope="session")
def tiny_vllm(tiny_model_dir):
    """One in-process vLLM engine (CPU) over the tiny model, shared by the session (~25 s to import+start).

    float32 so that its log-probs can be compared with the HF forward; the KV cache is sized explicitly
    (on CPU, `gpu_memory_utilization` is a fraction of host RAM and is easily refused).
    """
    from lmmr1.rollout.vllm_backend import VLLMRollout

    # The engine settings of lmmr1's vLLM backend (e.g. no chunked prefill on CPU), in float32.
    backend = VLLMRollout(tiny_model_dir, dtype="float32", max_model_len=2048, seed=0, max_images_per_prompt=2,
                          kv_cache_memory_bytes=128 << 20)
    yield backend.llm
    del backend
