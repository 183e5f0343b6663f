"""transformers `generate` on the policy module itself: the fallback rollout backend (no vLLM needed).

It generates with the trainer's own model object, so there is nothing to push after an update. Prompts are
generated one at a time (`num_return_sequences = n`), which keeps image prompts exact at the cost of
batching across prompts; the log-probs are taken from the raw logits (`output_logits`), like vLLM's.
"""

from __future__ import annotations

import torch

from lmmr1.models.forward import vision_inputs
from lmmr1.rollout.base import Sample, SamplingConfig, register_rollout_backend
from lmmr1.rollout.prompts import EncodedPrompt, media_pad_ids, truncate_at_media_token


@register_rollout_backend("hf")
class HFRollout:
    name = "hf"

    def __init__(self, model: torch.nn.Module, processor):
        self.model = model
        self.tokenizer = processor.tokenizer
        self.media_ids = media_pad_ids(self.tokenizer)
        eos = model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos])
        self.pad_id = self.tokenizer.pad_token_id
        self.stats = {"media_token_responses": 0, "weight_pushes": 0}

    @torch.no_grad()
    def generate(self, prompts: list[EncodedPrompt], n: int, sampling: SamplingConfig,
                 seed: int | None = None) -> list[list[Sample]]:
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        try:
            return [self._generate_one(i, p, n, sampling, device) for i, p in enumerate(prompts)]
        finally:
            self.model.train(was_training)

    def _generate_one(self, index: int, prompt: EncodedPrompt, n: int, sampling: SamplingConfig, device):
        input_ids = torch.tensor([prompt.prompt_ids], device=device)
        mm = vision_inputs(self.model, input_ids, {k: v.to(device) for k, v in prompt.mm_inputs.items()})
        out = self.model.generate(
            input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **mm,
            do_sample=sampling.temperature > 0, temperature=sampling.temperature or None,
            top_p=sampling.top_p, top_k=sampling.top_k or None, max_new_tokens=sampling.max_new_tokens,
            min_new_tokens=0 if sampling.stop_on_eos else sampling.max_new_tokens,
            num_return_sequences=n, return_dict_in_generate=True, output_logits=True,
            eos_token_id=sorted(self.eos_ids) if sampling.stop_on_eos else None, pad_token_id=self.pad_id,
        )
        prompt_len = input_ids.shape[1]
        logprobs = torch.log_softmax(torch.stack(out.logits, dim=1).float(), dim=-1)  # [n, T, V]
        samples = []
        for j in range(n):
            ids = out.sequences[j, prompt_len:].tolist()
            finish = "length"
            for t, tok in enumerate(ids):
                if sampling.stop_on_eos and tok in self.eos_ids:
                    ids, finish = ids[: t + 1], "stop"  # keep the EOS: the policy must learn to stop
                    break
            ids, cut = truncate_at_media_token(ids, self.media_ids)
            if cut:
                finish = "media_token"
                self.stats["media_token_responses"] += 1
            lps = logprobs[j, torch.arange(len(ids)), torch.tensor(ids, dtype=torch.long)].tolist() if ids else []
            samples.append(Sample(prompt_index=index, response_ids=ids, logprobs=lps,
                                  text=self.tokenizer.decode(ids, skip_special_tokens=False), finish_reason=finish))
        return samples

    def push_weights(self, model: torch.nn.Module) -> None:
        if model is not self.model:
            self.model.load_state_dict(model.state_dict())
        self.stats["weight_pushes"] += 1
