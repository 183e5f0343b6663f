"""A tiny Qwen2.5-VL checkpoint, built offline and deterministically from a seed.

lmmr1 tests, demos and benchmarks run on this model: it has Qwen2.5-VL's real architecture (M-RoPE,
windowed vision transformer, 2x2 patch merger), Qwen's special tokens and ChatML template, and a real
processor (image + video), so every code path that handles image prompts is exercised for real by
transformers, vLLM and OpenRLHF. Only the sizes are small (~0.6 M parameters) and the weights random.

What gets written (a normal HF checkpoint directory, loadable by `AutoProcessor`,
`AutoModelForImageTextToText` and `vllm.LLM`):
    config.json, generation_config.json, model.safetensors      the random model
    tokenizer.json, tokenizer_config.json, chat_template.jinja  byte-level BPE trained on a fixed corpus
    preprocessor_config.json, video_preprocessor_config.json    Qwen2-VL image/video processors

Sizes vLLM's CPU attention accepts: head_dim = hidden_size / num_attention_heads must be >= 32
(`Unsupported CPU attention configuration: head_dim=16`). The builder refuses smaller heads unless
`for_vllm=False`.

Build once, reuse: `tiny_qwen25vl()` caches the directory under `$LMMR1_CACHE_DIR` (default
`~/.cache/lmmr1`) keyed by a hash of the config, the builder version and the transformers version, and
writes it atomically (a temporary directory renamed into place), so parallel test sessions never see a
half-written checkpoint.

CLI:  python -m lmmr1.models.tiny --out DIR [--seed 0] [--preset tiny|qwen2.5-vl-3b] [--dtype bfloat16]
      [--device cuda] [key=value ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import random
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

BUILDER_VERSION = 1  # bump when the files written change for the same config

# Qwen2.5-VL's special tokens (same strings as the released tokenizer, so prompts, stop tokens and the
# OpenRLHF / vLLM multimodal code that looks them up by name behave as with the real model).
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# Qwen2-VL / Qwen2.5-VL's ChatML chat template (images and videos become
# <|vision_start|><|image_pad|><|vision_end|>; the processor expands the pad to one token per merged patch).
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# The tokenizer's training text: the vocabulary of the synthetic tasks and of LMM-R1's R1 prompt format,
# so that short answers tokenize into few tokens. Byte-level BPE still encodes any text.
_CORPUS = [
    "You are a helpful assistant. Think step by step and put the final answer in \\boxed{}.",
    "<think> Let me compute the answer step by step. </think> <answer> \\boxed{42} </answer>",
    "The answer is 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 25 30 50 100.",
    "What is 3 + 4? What is 12 - 5? What is 6 * 7? What is 8 / 2? plus minus times divided by equals",
    "How many circles, squares and triangles are in the image? Count the red, green and blue shapes.",
    "Tom has 5 apples and buys 3 more. How many apples does he have now? He has 8 apples.",
    "The angle ABC is 90 degrees. The triangle has sides 3, 4 and 5. Find the area of the triangle.",
    "I don't know. The answer cannot be determined from the given information.",
    "Move the ball up, down, left, right. Pass, shoot, sprint, dribble. action_shot action_short_pass",
    "The player pushes the box onto the target. Sokoban: Up Down Left Right.",
    "A B C D. Choose the correct option. (A) 1 (B) 2 (C) 3 (D) 4",
]


@dataclass(frozen=True)
class TinyQwen25VLConfig:
    """Sizes of the tiny Qwen2.5-VL. Defaults: ~0.6 M parameters, accepted by vLLM's CPU attention."""

    seed: int = 0
    """Seed for the random weights (the tokenizer is deterministic by construction)."""
    vocab_size: int = 1024
    """Upper bound on the BPE vocabulary, special tokens included (the fixed corpus yields 578 tokens);
    the embedding is padded to a multiple of 64."""
    embedding_size: int = 0
    """Rows of the token embedding (and tied lm_head); 0: the tokenizer's length padded to a multiple of 64.
    A real model's size (Qwen2.5-VL: 151936) gives its real embedding cost; ids past the tokenizer's are
    never produced by it."""
    hidden_size: int = 128
    """Text decoder width."""
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    """head_dim = hidden_size / num_attention_heads; vLLM's CPU attention needs head_dim >= 32."""
    num_key_value_heads: int = 2
    intermediate_size: int = 256
    max_position_embeddings: int = 4096
    rope_theta: float = 1_000_000.0
    tie_word_embeddings: bool = True
    """As in Qwen2.5-VL-3B: lm_head shares the token embedding (weight pushes must send both names)."""
    vision_depth: int = 2
    vision_hidden_size: int = 64
    vision_num_heads: int = 2
    vision_intermediate_size: int = 128
    vision_window_size: int = 112
    """Window attention size in pixels (Qwen2.5-VL uses 112 = 8 patches of 14 px)."""
    vision_fullatt_block_indexes: tuple[int, ...] = (1,)
    """Vision blocks with full (not windowed) attention; Qwen2.5-VL-3B uses (7, 15, 23, 31) of 32."""
    patch_size: int = 14
    spatial_merge_size: int = 2
    temporal_patch_size: int = 2
    min_pixels: int = 4 * 28 * 28
    """Processor minimum image area (pixels); images are resized up to at least this."""
    max_pixels: int = 256 * 28 * 28
    """Processor maximum image area (pixels); larger images are resized down (smart_resize)."""
    initializer_range: float = 0.02
    for_vllm: bool = True
    """Refuse sizes vLLM's CPU backend cannot run (head_dim < 32)."""

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def validate(self) -> None:
        """Raise ValueError naming the offending field when the sizes cannot make a working model."""
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"tiny Qwen2.5-VL: hidden_size={self.hidden_size} is not divisible by "
                f"num_attention_heads={self.num_attention_heads}"
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"tiny Qwen2.5-VL: num_attention_heads={self.num_attention_heads} is not a multiple of "
                f"num_key_value_heads={self.num_key_value_heads}"
            )
        if self.for_vllm and self.head_dim < 32:
            raise ValueError(
                f"tiny Qwen2.5-VL: head_dim = hidden_size / num_attention_heads = {self.hidden_size} / "
                f"{self.num_attention_heads} = {self.head_dim}, but vLLM's CPU attention needs head_dim >= 32 "
                f"(raise hidden_size or lower num_attention_heads, or pass for_vllm=False for an HF-only model)"
            )
        if self.head_dim % 8:
            raise ValueError(f"tiny Qwen2.5-VL: head_dim={self.head_dim} must be a multiple of 8 for M-RoPE")
        if self.vision_hidden_size % self.vision_num_heads:
            raise ValueError(
                f"tiny Qwen2.5-VL: vision_hidden_size={self.vision_hidden_size} is not divisible by "
                f"vision_num_heads={self.vision_num_heads}"
            )
        if any(not 0 <= i < self.vision_depth for i in self.vision_fullatt_block_indexes):
            raise ValueError(
                f"tiny Qwen2.5-VL: vision_fullatt_block_indexes={self.vision_fullatt_block_indexes} must lie in "
                f"[0, vision_depth={self.vision_depth})"
            )
        if self.embedding_size and self.embedding_size < self.vocab_size:
            raise ValueError(
                f"tiny Qwen2.5-VL: embedding_size={self.embedding_size} must be 0 or >= vocab_size={self.vocab_size}"
            )
        if self.vocab_size < len(SPECIAL_TOKENS) + 256:
            raise ValueError(
                f"tiny Qwen2.5-VL: vocab_size={self.vocab_size} must hold the 256 byte tokens and "
                f"{len(SPECIAL_TOKENS)} special tokens"
            )
        factor = self.patch_size * self.spatial_merge_size
        if not factor * factor <= self.min_pixels <= self.max_pixels:
            raise ValueError(
                f"tiny Qwen2.5-VL: need {factor}*{factor} <= min_pixels={self.min_pixels} <= "
                f"max_pixels={self.max_pixels}"
            )

    def cache_key(self) -> str:
        import transformers

        payload = {"config": dataclasses.asdict(self), "builder": BUILDER_VERSION, "transformers": transformers.__version__}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


QWEN25VL_3B = TinyQwen25VLConfig(
    embedding_size=151936, hidden_size=2048, num_hidden_layers=36, num_attention_heads=16, num_key_value_heads=2,
    intermediate_size=11008, max_position_embeddings=128000, rope_theta=1_000_000.0, tie_word_embeddings=True,
    vision_depth=32, vision_hidden_size=1280, vision_num_heads=16, vision_intermediate_size=3420,
    vision_window_size=112, vision_fullatt_block_indexes=(7, 15, 23, 31), min_pixels=3136, max_pixels=12845056,
)
"""Qwen2.5-VL-3B-Instruct's architecture (its config.json) with random weights and the tiny tokenizer:
3,754,622,976 parameters, 668,684,288 of them in the vision tower. For throughput and memory benchmarks
(bench/engine_throughput.py --arch qwen2.5-vl-3b), never for quality."""

PRESETS = {"tiny": TinyQwen25VLConfig(), "qwen2.5-vl-3b": QWEN25VL_3B}


def mrope_section(head_dim: int) -> list[int]:
    """M-RoPE split of the rotary half-dimension into (temporal, height, width) sections.

    Qwen2.5-VL uses [16, 24, 24] for head_dim 128, i.e. the half-dimension 64 split 2:3:3.
    We keep that ratio: t = half / 4, h = w = 3 * half / 8 (head_dim 32 -> [4, 6, 6]).
    """
    half = head_dim // 2
    t = half // 4
    h = (half - t) // 2
    return [t, h, half - t - h]


# ---------------------------------------------------------------------------------------------- builders


def build_tokenizer(vocab_size: int):
    """A byte-level BPE `PreTrainedTokenizerFast` with Qwen's special tokens and the ChatML template.

    The special tokens take ids 0..13 in SPECIAL_TOKENS order. BPE training over a fixed corpus is
    deterministic, so the same vocab_size always gives the same tokenizer.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_CORPUS * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens={},
        additional_special_tokens=SPECIAL_TOKENS[1:],
        model_max_length=32768,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_processor(tokenizer, cfg: TinyQwen25VLConfig):
    """Qwen2.5-VL processor: Qwen2-VL image + video processors with the config's min/max pixels."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    sizes = dict(
        patch_size=cfg.patch_size,
        merge_size=cfg.spatial_merge_size,
        temporal_patch_size=cfg.temporal_patch_size,
        size={"shortest_edge": cfg.min_pixels, "longest_edge": cfg.max_pixels},
    )
    image_processor = Qwen2VLImageProcessor(**sizes)
    video_processor = Qwen2VLVideoProcessor(**sizes)
    return Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )


def build_model_config(tokenizer, cfg: TinyQwen25VLConfig):
    from transformers import Qwen2_5_VLConfig

    vocab = cfg.embedding_size or -(-len(tokenizer) // 64) * 64  # padded to a multiple of 64, as Qwen does
    ids = {name: tokenizer.convert_tokens_to_ids(tok) for name, tok in [
        ("bos", "<|endoftext|>"), ("eos", "<|im_end|>"), ("pad", "<|endoftext|>"),
        ("image", "<|image_pad|>"), ("video", "<|video_pad|>"),
        ("vision_start", "<|vision_start|>"), ("vision_end", "<|vision_end|>"),
    ]}
    text_config = dict(
        vocab_size=vocab,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta,
                         "mrope_section": mrope_section(cfg.head_dim)},
        hidden_act="silu",
        rms_norm_eps=1e-6,
        initializer_range=cfg.initializer_range,
        tie_word_embeddings=cfg.tie_word_embeddings,
        bos_token_id=ids["bos"],
        eos_token_id=ids["eos"],
        pad_token_id=ids["pad"],
    )
    vision_config = dict(
        depth=cfg.vision_depth,
        hidden_size=cfg.vision_hidden_size,
        intermediate_size=cfg.vision_intermediate_size,
        num_heads=cfg.vision_num_heads,
        out_hidden_size=cfg.hidden_size,
        patch_size=cfg.patch_size,
        spatial_merge_size=cfg.spatial_merge_size,
        temporal_patch_size=cfg.temporal_patch_size,
        window_size=cfg.vision_window_size,
        fullatt_block_indexes=list(cfg.vision_fullatt_block_indexes),
        initializer_range=cfg.initializer_range,
    )
    return Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids["image"],
        video_token_id=ids["video"],
        vision_start_token_id=ids["vision_start"],
        vision_end_token_id=ids["vision_end"],
        tie_word_embeddings=cfg.tie_word_embeddings,
    )


def build_tiny_qwen25vl(out_dir: str | os.PathLike, cfg: TinyQwen25VLConfig | None = None, *,
                        dtype: str = "float32", device: str = "cpu") -> Path:
    """Write a tiny Qwen2.5-VL checkpoint directory to `out_dir` (created; must not exist or be empty).

    Deterministic: the same config writes byte-identical weights and tokenizer files. `dtype` / `device`:
    where the random weights are initialised and in which precision they are saved (a real-size model,
    e.g. `QWEN25VL_3B`, initialises in seconds on a GPU in bfloat16, in minutes on a CPU in float32).
    """
    cfg = cfg or TinyQwen25VLConfig()
    cfg.validate()  # before the heavy imports: a bad size fails in milliseconds

    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"tiny Qwen2.5-VL: output directory {out} exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)

    tokenizer = build_tokenizer(cfg.vocab_size)
    processor = build_processor(tokenizer, cfg)
    model_config = build_model_config(tokenizer, cfg)

    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    torch_dtype = getattr(torch, dtype)
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch_dtype)  # initialise in the target precision: no float32 copy of a large model
    try:
        with torch.device(device):
            model = Qwen2_5_VLForConditionalGeneration(model_config).eval()
    finally:
        torch.set_default_dtype(default_dtype)
    model.generation_config = GenerationConfig(
        bos_token_id=model_config.text_config.bos_token_id,
        eos_token_id=[tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")],
        pad_token_id=model_config.text_config.pad_token_id,
        do_sample=True,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    (out / "lmmr1_tiny.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
    return out


def default_cache_dir() -> Path:
    return Path(os.environ.get("LMMR1_CACHE_DIR", Path.home() / ".cache" / "lmmr1"))


def tiny_qwen25vl(cfg: TinyQwen25VLConfig | None = None, cache_dir: str | os.PathLike | None = None) -> Path:
    """Path to a cached tiny Qwen2.5-VL checkpoint for `cfg`, building it (atomically) on first use."""
    cfg = cfg or TinyQwen25VLConfig()
    cfg.validate()
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    final = root / "tiny-qwen2.5-vl" / cfg.cache_key()
    if (final / "lmmr1_tiny.json").exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        build_tiny_qwen25vl(staging, cfg)
        try:
            os.rename(staging, final)
        except OSError:
            if not (final / "lmmr1_tiny.json").exists():  # not a lost race with another builder
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


# ------------------------------------------------------------------------------------------------- CLI


def _parse_overrides(pairs: list[str]) -> dict:
    fields = {f.name: f for f in dataclasses.fields(TinyQwen25VLConfig)}
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in fields:
            raise SystemExit(f"unknown override {pair!r}; valid keys: {', '.join(fields)}")
        default = getattr(TinyQwen25VLConfig, key)
        if isinstance(default, bool):
            out[key] = value.lower() in ("1", "true", "yes")
        elif isinstance(default, tuple):
            out[key] = tuple(int(v) for v in value.split(",") if v)
        else:
            out[key] = type(default)(value)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m lmmr1.models.tiny",
        description="Build a tiny random Qwen2.5-VL checkpoint offline (deterministic from a seed).",
    )
    parser.add_argument("--out", help="output directory (default: the shared cache; prints the path)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny",
                        help="sizes to start from (qwen2.5-vl-3b: the real 3B architecture, random weights)")
    parser.add_argument("--dtype", default="float32", help="precision of the saved weights (with --out)")
    parser.add_argument("--device", default="cpu", help="where the weights are initialised (with --out)")
    parser.add_argument("overrides", nargs="*", help="TinyQwen25VLConfig fields as key=value")
    args = parser.parse_args(argv)
    try:
        cfg = dataclasses.replace(PRESETS[args.preset], seed=args.seed, **_parse_overrides(args.overrides))
        cfg.validate()
        path = (build_tiny_qwen25vl(args.out, cfg, dtype=args.dtype, device=args.device) if args.out
                else tiny_qwen25vl(cfg))
    except (ValueError, FileExistsError) as err:
        raise SystemExit(f"error: {err}") from None
    print(path)


if __name__ == "__main__":
    main()
