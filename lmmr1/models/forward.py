"""The trainer's forward: per-token log-probs of responses given image prompts.

log pi(y_t | x, y_<t) for every response token, from one forward over prompt + response with the prompt's
`pixel_values` / `image_grid_thw`. Batches are right-padded; the vision inputs of all images in the batch are
concatenated in row order, which is how Qwen2.5-VL consumes them (image_grid_thw tells the model where each
image's patches end).

Trap (transformers 5.x): Qwen2.5-VL computes its 3-D M-RoPE positions only when the forward receives
`mm_token_type_ids` (0 text, 1 image, 2 video, per token). Without it the model silently falls back to 1-D
positions over the image tokens, which is *not* what vLLM computes: log-probs then disagree as soon as the
language model's weights are not near zero. `token_logprobs` always builds it from the token ids over the
whole sequence (prompt + response), as OpenRLHF's Actor does.
"""

from __future__ import annotations

import torch

from lmmr1.rollout.prompts import EncodedPrompt


def collate(prompts: list[EncodedPrompt], responses: list[list[int]], pad_id: int, device=None):
    """Right-padded batch of prompt + response.

    Returns input_ids [B, T], attention_mask [B, T], action_mask [B, T-1] (1 where position t+1 is a
    response token, aligned with logits[:, :-1]), and the concatenated vision inputs.
    """
    lengths = [len(p.prompt_ids) + len(r) for p, r in zip(prompts, responses)]
    T = max(lengths)
    B = len(prompts)
    input_ids = torch.full((B, T), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((B, T), dtype=torch.long)
    action_mask = torch.zeros((B, T - 1), dtype=torch.float32)
    for b, (p, r) in enumerate(zip(prompts, responses)):
        seq = p.prompt_ids + list(r)
        input_ids[b, : len(seq)] = torch.tensor(seq)
        attention_mask[b, : len(seq)] = 1
        action_mask[b, len(p.prompt_ids) - 1 : len(seq) - 1] = 1.0
    if device is not None:
        input_ids, attention_mask, action_mask = input_ids.to(device), attention_mask.to(device), action_mask.to(device)
    return input_ids, attention_mask, action_mask, concat_vision_inputs(prompts, device)


def concat_vision_inputs(prompts: list[EncodedPrompt], device=None) -> dict[str, torch.Tensor]:
    """The batch's `pixel_values` and `image_grid_thw`: every image prompt's, concatenated in row order ({} when
    no prompt has an image)."""
    with_images = [p.mm_inputs for p in prompts if p.mm_inputs]
    if not with_images:
        return {}
    return {key: torch.cat([mm[key] for mm in with_images]).to(device) for key in ("pixel_values", "image_grid_thw")}


def mm_token_type_ids(input_ids: torch.Tensor, config) -> torch.Tensor:
    """Per-token modality for M-RoPE: 1 on image pad tokens, 2 on video pad tokens, 0 elsewhere. [B, T]"""
    types = (input_ids == config.image_token_id).to(torch.int32)
    types[input_ids == config.video_token_id] = 2
    return types


def vision_inputs(model, input_ids: torch.Tensor, mm_inputs: dict) -> dict:
    """The keyword arguments a Qwen2.5-VL forward/generate needs besides input_ids and attention_mask."""
    if "pixel_values" not in mm_inputs:
        return {}
    dtype = next(model.parameters()).dtype
    return {**mm_inputs, "pixel_values": mm_inputs["pixel_values"].to(dtype),
            "mm_token_type_ids": mm_token_type_ids(input_ids, model.config)}


def token_logprobs(model, input_ids, attention_mask, mm_inputs: dict, temperature: float = 1.0,
                   return_entropy: bool = False):
    """log pi(x_{t+1} | x_<=t) for t = 0..T-2: [B, T-1] (and the entropy of each step's distribution)."""
    mm_inputs = vision_inputs(model, input_ids, mm_inputs)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, **mm_inputs).logits[:, :-1].float()
    if temperature != 1.0:
        logits = logits / temperature
    logp = torch.log_softmax(logits, dim=-1)  # [B, T-1, V]
    chosen = logp.gather(-1, input_ids[:, 1:, None])[..., 0]  # [B, T-1]
    if not return_entropy:
        return chosen
    entropy = -(logp.exp() * logp).sum(-1)  # [B, T-1]
    return chosen, entropy


def response_logprobs(model, prompt: EncodedPrompt, response_ids: list[int], pad_id: int = 0,
                      temperature: float = 1.0) -> torch.Tensor:
    """log pi(y_t | x, y_<t) for one response, logits divided by `temperature`: [len(response_ids)]."""
    device = next(model.parameters()).device
    input_ids, attention_mask, action_mask, mm = collate([prompt], [response_ids], pad_id, device)
    logp = token_logprobs(model, input_ids, attention_mask, mm, temperature)
    return logp[0][action_mask[0].bool()]
