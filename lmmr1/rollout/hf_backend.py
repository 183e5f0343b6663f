"""transformers `generate` on the policy module itself: the fallback rollout backend (no vLLM needed).

It generates with the trainer's own model object, so there is nothing to push after an update. Prompts are
batched: up to `max_batch_sequences` responses per `generate` call (whole prompts, each with
`num_return_sequences = n`), the prompts left-padded to a common length, their images' `pixel_values` /
`image_grid_thw` concatenated in prompt order (Qwen2.5-VL's M-RoPE positions skip the padding through the
attention mask). The log-probs are those of the distribution sampled from (`output_scores`: after
temperature / top-p / top-k), like vLLM's `processed_logprobs`, one step at a time (never a [B, T, V]
float32 copy).
"""

from __future__ import annotations

import torch

from lmmr1.models.forward import concat_vision_inputs, vision_inputs
from lmmr1.rollout.base import Sample, SamplingConfig, register_rollout_backend
from lmmr1.rollout.prompts import EncodedPrompt, media_pad_ids, truncate_at_media_token


def sampling_arguments(sampling: SamplingConfig) -> dict:
    """`generate` arguments that make the sampling distribution SamplingConfig's and nothing else.

    transformers fills every sampling argument left unset from the checkpoint's generation_config.json, then
    from its global defaults (top_k=50). Qwen2.5-VL-Instruct ships top_k=1, top_p=0.001, temperature=0.1 and
    repetition_penalty=1.05 there: left unset, every one of the G samples would be the greedy answer, and
    penalised. So each argument that shapes the distribution is given, neutral unless the config sets it (as
    vLLM's SamplingParams does: it never reads generation_config.json when given explicit parameters).
    """
    sample = sampling.temperature > 0
    return {
        "do_sample": sample,
        "temperature": sampling.temperature if sample else 1.0,
        "top_p": sampling.top_p if sample else 1.0,
        "top_k": sampling.top_k if sample else 0,  # 0: no top-k filtering
        "min_p": 0.0, "typical_p": 1.0, "epsilon_cutoff": 0.0, "eta_cutoff": 0.0,
        "repetition_penalty": 1.0, "no_repeat_ngram_size": 0,
    }


@register_rollout_backend("hf")
class HFRollout:
    name = "hf"

    def __init__(self, model: torch.nn.Module, processor, max_batch_sequences: int = 64):
        self.model = model
        self.tokenizer = processor.tokenizer
        self.media_ids = media_pad_ids(self.tokenizer)
        eos = model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos])
        self.pad_id = self.tokenizer.pad_token_id
        self.max_batch_sequences = max_batch_sequences
        self.stats = {"media_token_responses": 0, "weight_pushes": 0}

    @torch.no_grad()
    def generate(self, prompts: list[EncodedPrompt], n: int, sampling: SamplingConfig,
                 seed: int | None = None) -> list[list[Sample]]:
        """n samples per prompt, in batches of whole prompts (at least one prompt per batch)."""
        was_training = self.model.training
        self.model.eval()
        per_batch = max(1, self.max_batch_sequences // max(1, n))  # prompts per generate call
        try:
            results: list[list[Sample]] = []
            for first in range(0, len(prompts), per_batch):
                results += self._generate_batch(first, prompts[first : first + per_batch], n, sampling)
            return results
        finally:
            self.model.train(was_training)

    def _generate_batch(self, first: int, prompts: list[EncodedPrompt], n: int, sampling: SamplingConfig):
        """Prompts `first`, `first + 1`, ... in one `generate` call: left-padded, images concatenated."""
        device = next(self.model.parameters()).device
        T = max(len(p.prompt_ids) for p in prompts)
        input_ids = torch.full((len(prompts), T), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(prompts), T), dtype=torch.long)
        for row, p in enumerate(prompts):
            input_ids[row, T - len(p.prompt_ids):] = torch.tensor(p.prompt_ids)
            attention_mask[row, T - len(p.prompt_ids):] = 1
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
        mm = concat_vision_inputs(prompts, device)
        out = self.model.generate(
            input_ids=input_ids, attention_mask=attention_mask, **vision_inputs(self.model, input_ids, mm),
            **sampling_arguments(sampling), max_new_tokens=sampling.max_new_tokens,
            min_new_tokens=0 if sampling.stop_on_eos else sampling.max_new_tokens,
            num_return_sequences=n, return_dict_in_generate=True, output_scores=True,
            eos_token_id=sorted(self.eos_ids) if sampling.stop_on_eos else None, pad_token_id=self.pad_id,
        )
        generated = out.sequences[:, T:]  # [B * n, steps], row r answers prompt r // n
        # Log-probs of the distribution sampled from (scores after temperature / top-p / top-k), as vLLM's
        # processed_logprobs: equal to the trainer's tempered forward when top_p = 1 and top_k = 0.
        logprobs = torch.stack([torch.log_softmax(step.float(), dim=-1).gather(-1, generated[:, t, None])[:, 0]
                                for t, step in enumerate(out.scores)], dim=1)  # [B * n, steps]
        results = []
        for row in range(len(prompts)):
            samples = []
            for j in range(row * n, (row + 1) * n):
                ids, finish = self._cut(generated[j].tolist(), sampling)
                samples.append(Sample(prompt_index=first + row, response_ids=ids, logprobs=logprobs[j, : len(ids)].tolist(),
                                      text=self.tokenizer.decode(ids, skip_special_tokens=False), finish_reason=finish))
            results.append(samples)
        return results

    def _cut(self, ids: list[int], sampling: SamplingConfig) -> tuple[list[int], str]:
        """A generated row -> (response ids, finish reason): up to and including the first EOS ("stop"; the
        padding after it dropped), else all of it ("length"); then cut before a vision pad ("media_token")."""
        finish = "length"
        for t, tok in enumerate(ids):
            if sampling.stop_on_eos and tok in self.eos_ids:
                ids, finish = ids[: t + 1], "stop"  # keep the EOS: the policy must learn to stop
                break
        ids, cut = truncate_at_media_token(ids, self.media_ids)
        if cut:
            finish = "media_token"
            self.stats["media_token_responses"] += 1
        return ids, finish

    def push_weights(self, model: torch.nn.Module) -> None:
        if model is not self.model:
            self.model.load_state_dict(model.state_dict())
        self.stats["weight_pushes"] += 1
