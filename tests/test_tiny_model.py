"""The tiny Qwen2.5-VL: offline, deterministic, loadable by transformers, refuses sizes vLLM cannot run."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest
import torch

from lmmr1.models.tiny import TinyQwen25VLConfig, build_tiny_qwen25vl, mrope_section, tiny_qwen25vl


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_files_and_special_tokens(tiny_model_dir):
    from transformers import AutoProcessor

    for name in ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                 "processor_config.json", "chat_template.jinja"]:
        assert (tiny_model_dir / name).is_file(), name
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    tokenizer = processor.tokenizer
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["image_token_id"] == tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert config["video_token_id"] == tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert config["vision_start_token_id"] == tokenizer.convert_tokens_to_ids("<|vision_start|>")
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    # Special tokens are single tokens, never split by BPE.
    assert tokenizer("<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>")["input_ids"][:1] == [
        tokenizer.convert_tokens_to_ids("<|im_start|>")
    ]
    # The image processor keeps the configured pixel bounds (rollout and training must agree on them).
    cfg = TinyQwen25VLConfig()
    assert processor.image_processor.size == {"shortest_edge": cfg.min_pixels, "longest_edge": cfg.max_pixels}
    assert type(processor.video_processor).__name__ == "Qwen2VLVideoProcessor"


def test_chat_template_places_vision_span(tiny_model_dir):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is 3 + 4?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What is 3 + 4?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_architecture_sizes(tiny_model_dir):
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, dtype=torch.float32)
    text = model.config.text_config
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert text.hidden_size // text.num_attention_heads == 32  # vLLM CPU attention needs >= 32
    assert text.rope_parameters["mrope_section"] == [4, 6, 6]  # sums to head_dim / 2 = 16
    assert model.config.vision_config.out_hidden_size == text.hidden_size
    n_params = sum(p.numel() for p in model.parameters())
    assert 400_000 < n_params < 1_000_000, n_params
    # Tied embeddings, as in Qwen2.5-VL-3B.
    assert model.lm_head.weight.data_ptr() == model.model.language_model.embed_tokens.weight.data_ptr()


def test_deterministic_from_seed(tmp_path, tiny_model_dir):
    a = build_tiny_qwen25vl(tmp_path / "a", TinyQwen25VLConfig(seed=0))
    c = build_tiny_qwen25vl(tmp_path / "c", TinyQwen25VLConfig(seed=1))
    for name in ["model.safetensors", "tokenizer.json", "config.json"]:
        assert _digest(a / name) == _digest(tiny_model_dir / name), name  # same seed: byte-identical
    assert _digest(c / "model.safetensors") != _digest(a / "model.safetensors")
    assert _digest(c / "tokenizer.json") == _digest(a / "tokenizer.json")


def test_cache_reuses_directory(tmp_path):
    cfg = TinyQwen25VLConfig(seed=3)
    first = tiny_qwen25vl(cfg, cache_dir=tmp_path)
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert tiny_qwen25vl(cfg, cache_dir=tmp_path) == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp  # not rebuilt
    assert [p.name for p in first.parent.iterdir()] == [first.name]  # no staging leftovers
    assert tiny_qwen25vl(TinyQwen25VLConfig(seed=4), cache_dir=tmp_path) != first


def test_mrope_section_matches_qwen():
    assert mrope_section(128) == [16, 24, 24]  # Qwen2.5-VL's released value
    assert mrope_section(32) == [4, 6, 6]
    assert sum(mrope_section(64)) == 32


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(hidden_size=64, num_attention_heads=4), "head_dim = hidden_size / num_attention_heads = 64 / 4 = 16"),
        (dict(hidden_size=130), "not divisible by num_attention_heads=4"),
        (dict(num_key_value_heads=3), "not a multiple of num_key_value_heads=3"),
        (dict(vision_fullatt_block_indexes=(5,)), "vision_fullatt_block_indexes=(5,)"),
        (dict(min_pixels=100), "min_pixels=100"),
    ],
)
def test_impossible_sizes_are_clear_errors(overrides, message):
    with pytest.raises(ValueError, match="tiny Qwen2.5-VL") as err:
        TinyQwen25VLConfig(**overrides).validate()
    assert message in str(err.value)


def test_small_heads_allowed_for_hf_only_models():
    TinyQwen25VLConfig(hidden_size=64, num_attention_heads=4, for_vllm=False).validate()


def test_cli_reports_impossible_size(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "lmmr1.models.tiny", "--out", str(tmp_path / "m"), "hidden_size=64"],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode != 0
    assert "vLLM's CPU attention needs head_dim >= 32" in run.stderr
    assert not (tmp_path / "m").exists()


def test_hf_generate_answers_image_prompt(tiny_model_dir):
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many circles?"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    image = Image.new("RGB", (120, 90), (200, 30, 30))
    inputs = processor(text=[prompt], images=[image], return_tensors="pt")
    assert inputs["image_grid_thw"].tolist() == [[1, 6, 8]]  # 90x120 -> smart_resize 84x112 -> 6x8 patches
    torch.manual_seed(0)
    out = model.generate(**inputs, max_new_tokens=8, do_sample=True)
    new_tokens = out[0, inputs["input_ids"].shape[1]:]
    assert 1 <= len(new_tokens) <= 8
    assert isinstance(processor.decode(new_tokens), str)


def test_qwen25vl_3b_preset_has_the_real_architecture():
    """The benchmark preset is Qwen2.5-VL-3B-Instruct's config.json: its exact parameter count (built on the
    meta device: no memory), M-RoPE sections, vision tower and tied 151,936-row embedding."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    from lmmr1.models.tiny import QWEN25VL_3B, build_model_config, build_tokenizer

    QWEN25VL_3B.validate()
    config = build_model_config(build_tokenizer(QWEN25VL_3B.vocab_size), QWEN25VL_3B)
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(config)
    params = dict(model.named_parameters())
    assert sum(p.numel() for p in params.values()) == 3_754_622_976
    assert sum(p.numel() for name, p in params.items() if "visual" in name) == 668_684_288
    assert config.text_config.vocab_size == 151_936 and config.text_config.rope_parameters["mrope_section"] == [16, 24, 24]
    assert model.lm_head.weight is model.model.language_model.embed_tokens.weight


def test_embedding_size_pads_the_vocabulary(tmp_path):
    from transformers import AutoModelForImageTextToText

    path = build_tiny_qwen25vl(tmp_path / "m", TinyQwen25VLConfig(embedding_size=1024), dtype="bfloat16")
    model = AutoModelForImageTextToText.from_pretrained(path)
    assert model.get_input_embeddings().weight.shape == (1024, 128)
    assert model.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="embedding_size=600 must be 0 or >= vocab_size=1024"):
        TinyQwen25VLConfig(embedding_size=600).validate()
