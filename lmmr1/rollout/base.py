"""The rollout interface and its registry (one dict, one decorator, one getter)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import torch

from lmmr1.rollout.prompts import EncodedPrompt


@dataclass(frozen=True)
class SamplingConfig:
    """How responses are sampled."""

    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    """0 = no top-k filtering."""
    stop_on_eos: bool = True


@dataclass
class Sample:
    """One response to one prompt."""

    prompt_index: int
    response_ids: list[int]
    logprobs: list[float]
    """log pi_old(y_t | x, y_<t) of each response token under the distribution sampled from (temperature,
    top-p, top-k applied)."""
    text: str = ""
    finish_reason: str = "length"
    """"stop" (EOS), "length" (max_new_tokens) or "media_token" (cut before a generated vision pad token)."""
    info: dict = field(default_factory=dict)


class RolloutBackend(Protocol):
    name: str

    def generate(self, prompts: list[EncodedPrompt], n: int, sampling: SamplingConfig,
                 seed: int | None = None) -> list[list[Sample]]:
        """n samples per prompt; result[i] holds prompt i's samples."""

    def push_weights(self, model: torch.nn.Module) -> None:
        """Make the backend generate with `model`'s current weights."""


ROLLOUT_BACKENDS: dict[str, Callable[..., RolloutBackend]] = {}


def register_rollout_backend(name: str):
    def wrap(factory):
        ROLLOUT_BACKENDS[name] = factory
        return factory

    return wrap


def get_rollout_backend(name: str) -> Callable[..., RolloutBackend]:
    if name not in ROLLOUT_BACKENDS:
        import lmmr1.rollout.hf_backend  # noqa: F401  (registers "hf")
        import lmmr1.rollout.vllm_backend  # noqa: F401  (registers "vllm")
    try:
        return ROLLOUT_BACKENDS[name]
    except KeyError:
        raise KeyError(f"unknown rollout backend {name!r}; valid: {', '.join(sorted(ROLLOUT_BACKENDS))}") from None
