"""lmmr1's vLLM rollout actor for OpenRLHF 0.11.2, and the engines built with lmmr1's engine arguments.

Imported inside the Ray workers (classes travel by reference), so lmmr1 must be installed on every node. Like
OpenRLHF's `vllm_engine`, this module imports no DeepSpeed: the rollout processes stay free of it.

- `LmmRolloutRayActor`: OpenRLHF's `RolloutRayActor` plus `reset_caches()`, which clears vLLM's encoder
  cache (vision embeddings computed with the old weights), its multimodal processor cache and its prefix
  cache. OpenRLHF resets only the prefix cache, so a repeated image would reuse stale vision embeddings
  once the vision tower trains. Its `generate` (every rollout goes through it: OpenRLHF's single-turn
  executor and lmmr1's multi-turn one) never samples an image/video pad token (`ban_media_tokens`).
  (Ray forbids subclassing a `@ray.remote` class: the wrapped class, `__ray_actor_class__`, is subclassed
  and wrapped again.)
- `create_rollout_engines`: the engines with lmmr1's engine arguments (`engine_kwargs`): the Qwen2.5-VL image
  sizing of the prepared model directory (`mm_processor_kwargs`), vLLM's per-prompt image limit, the
  training dtype.
"""

from __future__ import annotations

import copy
import json

import ray
from openrlhf.trainer.ray.utils import get_bundle_indices
from openrlhf.trainer.ray.vllm_engine import RolloutRayActor, batch_vllm_engine_call
from ray.util.placement_group import placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

DTYPES = {"bf16": "bfloat16", "fp16": "float16"}


def ban_media_tokens(sampling_params, pad_token_ids: set[int]):
    """A copy of `sampling_params` under which the image/video pad tokens cannot be sampled: their logits get
    a bias of -inf (added to the request's own `logit_bias`).

    A generated pad token has no image behind it. In a single-turn sample the trainer's forward would then see
    more image tokens than image features and fail the step; in a multi-turn episode vLLM would refuse the next
    turn's prompt (more placeholders than images). The local engine cuts a response at such a token instead
    (lmmr1.rollout.prompts.truncate_at_media_token); here the rollout runs inside OpenRLHF, which has no hook
    after sampling, so the token is made unsamplable. The sampling distribution becomes
    pi(y) / (1 - pi(pads)) on the other tokens: negligible once the policy rarely puts mass on pad tokens.
    """
    if not pad_token_ids:
        return sampling_params
    params = copy.deepcopy(sampling_params)
    params.logit_bias = {**(params.logit_bias or {}), **dict.fromkeys(sorted(pad_token_ids), float("-inf"))}
    return params


class LmmRolloutRayActorImpl(RolloutRayActor.__ray_actor_class__):
    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        """OpenRLHF's generate, with the media pad tokens unsamplable (`ban_media_tokens`)."""
        params = ban_media_tokens(sampling_params, self._mm_pad_token_ids or set())
        return await super().generate(prompt_token_ids, params, multi_modal_data)

    async def reset_caches(self) -> None:
        """Forget everything computed with the previous weights: vision embeddings, processed multimodal
        inputs, KV blocks of seen prefixes."""
        await self.llm.reset_encoder_cache()
        await self.llm.reset_mm_cache()
        await self.llm.reset_prefix_cache()


LmmRolloutRayActor = ray.remote(LmmRolloutRayActorImpl)


def media_pad_token_ids(model_dir: str) -> set[int]:
    """The processor's image and video pad token ids (OpenRLHF collapses their runs before vLLM expands them)."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(model_dir)
    return {i for i in (getattr(processor, "image_token_id", None), getattr(processor, "video_token_id", None))
            if i is not None}


def engine_kwargs(args, index: int, mm_pad_token_ids: set[int]) -> dict:
    """Constructor arguments of rollout engine `index` (vLLM engine arguments plus OpenRLHF's actor
    arguments), from the validated OpenRLHF `args` (see lmmr1.distributed.args)."""
    kwargs = {
        "model": args.actor.model_name_or_path,
        "dtype": DTYPES[args.ds.param_dtype],
        "seed": args.train.seed + index,
        "max_model_len": args.data.max_len,
        "tensor_parallel_size": args.vllm.tensor_parallel_size,
        "distributed_executor_backend": "uni" if args.vllm.tensor_parallel_size == 1 else "ray",
        "enforce_eager": args.vllm.enforce_eager,
        "enable_prefix_caching": args.vllm.enable_prefix_caching,
        "gpu_memory_utilization": args.vllm.gpu_memory_utilization,
        "enable_sleep_mode": args.vllm.enable_sleep,
        "trust_remote_code": True,
        "worker_extension_cls": "openrlhf.trainer.ray.vllm_worker_wrap.WorkerWrap",
        "full_determinism": args.train.full_determinism_enable,
        # OpenRLHF's actor arguments (not vLLM's):
        "agent_func_path": args.train.agent_func_path,
        "remote_rm_url": args.reward.remote_url,
        "mm_pad_token_ids": mm_pad_token_ids,
    }
    if args.data.max_images_per_prompt > 0:
        kwargs["limit_mm_per_prompt"] = {"image": args.data.max_images_per_prompt, "video": 0}
    mm_processor_kwargs = json.loads(args.lmmr1.mm_processor_kwargs)
    if mm_processor_kwargs:
        kwargs["mm_processor_kwargs"] = mm_processor_kwargs
    if args.algo.advantage.is_correction_level != "off":
        kwargs.update(logprobs_mode="processed_logprobs", max_logprobs=1)
    return kwargs


def create_rollout_engines(args, shared_pg=None) -> list:
    """`args.vllm.num_engines` LmmRolloutRayActors. Colocated (`shared_pg`, the actors' placement group):
    each engine takes 0.2 of a GPU bundle; otherwise the engines get a packed placement group of their own."""
    tp = args.vllm.tensor_parallel_size
    pad_ids = media_pad_token_ids(args.actor.model_name_or_path)  # text-only stages too: see ban_media_tokens
    colocated = shared_pg is not None
    if not colocated:
        shared_pg = placement_group([{"GPU": 1, "CPU": 1}] * (args.vllm.num_engines * tp), strategy="PACK")
        ray.get(shared_pg.ready())
    gpus = 0.2 if colocated else 1
    engines = []
    for i in range(args.vllm.num_engines):
        bundles = get_bundle_indices(shared_pg, i, tp) if tp > 1 else None
        strategy = PlacementGroupSchedulingStrategy(placement_group=shared_pg, placement_group_capture_child_tasks=True,
                                                    placement_group_bundle_index=bundles[0] if bundles else i)
        gpus_of_actor = gpus if tp == 1 else 0  # with TP > 1 vLLM's Ray executor claims the GPUs
        engines.append(LmmRolloutRayActor.options(num_cpus=gpus_of_actor, num_gpus=gpus_of_actor,
                                                  scheduling_strategy=strategy)
                       .remote(**engine_kwargs(args, i, pad_ids), bundle_indices=bundles, num_gpus=gpus))
    if args.vllm.enable_sleep:
        batch_vllm_engine_call(engines, "sleep")
    return engines
