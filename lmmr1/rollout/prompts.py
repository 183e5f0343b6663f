"""Encode a chat prompt with images once, through the model's processor; rollout and training share the result.

The trainer's forward needs `input_ids` with one `<|image_pad|>` per merged vision patch, plus
`pixel_values` and `image_grid_thw`; vLLM needs the images and the prompt with one pad per image (it expands
the pads with its own copy of the same processor). Both come from one `EncodedPrompt`, and the vLLM backend
checks that vLLM's expanded prompt equals `prompt_ids` token for token, so a sizing disagreement between the
two (different min/max pixels, a different processor version) is an error, never a silent mismatch.

Prompts are never truncated: cutting a vision span would leave pads without features. A prompt longer than
`max_prompt_len` raises PromptTooLongError for that record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

MEDIA_PAD_TOKENS = ("<|image_pad|>", "<|video_pad|>")


class PromptTooLongError(ValueError):
    """The encoded prompt (image tokens included) exceeds max_prompt_len; the record must be skipped."""


@dataclass
class EncodedPrompt:
    """One prompt as both the rollout engine and the trainer see it."""

    prompt_ids: list[int]
    """Token ids with every image expanded to its `<|image_pad|>` run (what the trainer's forward takes)."""
    images: list[Any] = field(default_factory=list)
    """The PIL images, in order (what vLLM takes as multi_modal_data)."""
    mm_inputs: dict[str, torch.Tensor] = field(default_factory=dict)
    """Processor outputs for the trainer: pixel_values [n_patches, C*T*P*P], image_grid_thw [n_images, 3]."""
    vllm_prompt_ids: list[int] = field(default_factory=list)
    """prompt_ids with each pad run collapsed to one pad (vLLM expands it again)."""
    text: str = ""
    """The chat-templated prompt text, for logs and rewards."""


def media_pad_ids(tokenizer) -> set[int]:
    """Ids of the tokens that stand for vision features (`<|image_pad|>`, `<|video_pad|>`)."""
    return {tokenizer.convert_tokens_to_ids(tok) for tok in MEDIA_PAD_TOKENS}


def collapse_pad_runs(ids: list[int], pad_ids: set[int]) -> list[int]:
    """Collapse each run of identical media pad tokens to one token: [a, P, P, P, b] -> [a, P, b]."""
    out: list[int] = []
    for tok in ids:
        if tok in pad_ids and out and out[-1] == tok:
            continue
        out.append(tok)
    return out


def encode_prompt(processor, messages: list[dict], images: list | None = None, max_prompt_len: int | None = None,
                  add_generation_prompt: bool = True) -> EncodedPrompt:
    """Chat template + processor, once. `messages` use `{"type": "image"}` placeholders in image order."""
    images = list(images or [])
    text = processor.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=False)
    n_placeholders = text.count("<|vision_start|><|image_pad|><|vision_end|>")
    if n_placeholders != len(images):
        raise ValueError(f"prompt has {n_placeholders} image placeholders but {len(images)} images were given")
    if images:
        batch = processor(text=[text], images=images, return_tensors="pt")
        mm_inputs = {k: v for k, v in batch.items() if k in ("pixel_values", "image_grid_thw")}
    else:
        batch = processor.tokenizer([text], return_tensors="pt")
        mm_inputs = {}
    prompt_ids = batch["input_ids"][0].tolist()
    if max_prompt_len is not None and len(prompt_ids) > max_prompt_len:
        raise PromptTooLongError(
            f"prompt is {len(prompt_ids)} tokens ({len(images)} image(s)), longer than max_prompt_len={max_prompt_len}; "
            "image prompts are never truncated (raise max_prompt_len or lower the processor's max_pixels)"
        )
    pads = media_pad_ids(processor.tokenizer)
    return EncodedPrompt(
        prompt_ids=prompt_ids,
        images=images,
        mm_inputs=mm_inputs,
        vllm_prompt_ids=collapse_pad_runs(prompt_ids, pads),
        text=text,
    )


def truncate_at_media_token(response_ids: list[int], pad_ids: set[int]) -> tuple[list[int], bool]:
    """Cut a response before its first vision pad token (a generated pad has no vision features behind it
    and would break the trainer's forward). Returns (ids, was_cut)."""
    for i, tok in enumerate(response_ids):
        if tok in pad_ids:
            return response_ids[:i], True
    return response_ids, False
