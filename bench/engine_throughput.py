"""Throughput of the single-device engine, per phase, for the vLLM and HF rollout backends side by side.

    .venv/bin/python bench/engine_throughput.py [--steps 6] [--prompts 2] [--samples 8] [--new-tokens 32]
    python bench/engine_throughput.py --arch qwen2.5-vl-3b --backends hf       # on a GPU: the real 3B sizes

Both backends run the same config on the same synthetic data (half text arithmetic, half counting images), in
this one process, one after the other. `--arch tiny` (default) is the tiny Qwen2.5-VL; `--arch qwen2.5-vl-3b`
builds Qwen2.5-VL-3B-Instruct's architecture with random weights (lmmr1.models.tiny.QWEN25VL_3B, 3.75 B
parameters, bfloat16, initialised on the GPU when there is one) and trains it in bfloat16. Each step's phases
come from the engine's own `time/*` metrics; the first step (warm-up) is dropped and the median of the rest
is reported, with rollout tokens/s (generated tokens / rollout time), train tokens/s (prompt + response tokens
through the PPO forward/backward, `train/tokens` / train time) and peak memory (GPU: torch's peak allocated
per backend; CPU: the process's peak resident set, cumulative). Prints a Markdown table; `--json` writes the
raw numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

PHASES = ("data", "rollout", "reward", "train", "push")


def make_data(folder: Path, n: int) -> Path:
    from data_pipelines.synthetic import generate
    from lmmr1.data.records import record_to_json

    text = generate("arithmetic", n, seed=0, out=folder / "text.jsonl", system="none")
    images = generate("counting", n, seed=0, out=folder / "counting.jsonl", system="none", image_size=112)
    mixed = folder / "mixed.jsonl"
    mixed.write_text("".join(record_to_json(r) + "\n" for pair in zip(text, images) for r in pair))
    return mixed


def build_model(args, workdir: Path) -> str:
    """"tiny" (the engine builds and caches it), or a random-weight checkpoint of the preset's sizes."""
    if args.arch == "tiny" and not args.model_override:
        return "tiny"
    import dataclasses

    import torch

    from lmmr1.models.tiny import PRESETS, _parse_overrides, build_tiny_qwen25vl

    cfg = dataclasses.replace(PRESETS[args.arch], **_parse_overrides(args.model_override))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return str(build_tiny_qwen25vl(workdir / "model", cfg, dtype=args.dtype, device=device))


def peak_memory_gib() -> float:
    import resource

    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def bench_backend(backend: str, model: str, data: Path, args, workdir: Path) -> dict:
    """One engine run. `backend` is a rollout backend name, or "hf:N" for HF with N responses per generate call."""
    import gc

    import torch

    from lmmr1.config import RunConfig, from_dict
    from lmmr1.engine.local import run

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    cfg = from_dict(RunConfig, {
        "model": {"path": model, "dtype": args.dtype},
        "data": {"train_files": [str(data)], "max_prompt_len": 2048},
        "rollout": {"backend": backend.partition(":")[0], "n_samples": args.samples, "prompts_per_step": args.prompts,
                    "max_new_tokens": args.new_tokens,
                    **({"hf_batch_sequences": int(backend.partition(":")[2])} if ":" in backend else {})},
        "algorithm": {"estimator": "ngrpo"},
        "optim": {"micro_batch_size": args.micro_batch, "updates_per_step": 1},
        "train": {"steps": args.steps, "run_dir": str(workdir / backend.replace(":", "_")), "save_every": 10_000,
                  "progress": False, "tensorboard": False},
    })
    start = time.perf_counter()
    run_dir = run(cfg)
    wall = time.perf_counter() - start
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steady = [r for r in rows if r["step"] >= 2]
    median = lambda key: statistics.median(r.get(key, 0.0) for r in steady)
    tokens = median("rollout/tokens")
    return {
        "backend": backend,
        "wall_s_including_startup": wall,
        **{f"{phase}_s": median(f"time/{phase}") for phase in PHASES},
        "step_s": statistics.median(sum(r.get(f"time/{p}", 0.0) for p in PHASES) for r in steady),
        "rollout_tokens": tokens,
        "rollout_tok_per_s": tokens / max(median("time/rollout"), 1e-9),
        "train_tokens": median("train/tokens"),
        "train_tok_per_s": median("train/tokens") / max(median("time/train"), 1e-9),
        "peak_memory_gib": peak_memory_gib(),
        "logprob_gap_max": max(r.get("rollout/logprob_gap_max", 0.0) for r in steady),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--prompts", type=int, default=2, help="P, prompts per step")
    parser.add_argument("--samples", type=int, default=8, help="G, samples per prompt")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--micro-batch", type=int, default=8)
    parser.add_argument("--backends", default="vllm,hf",
                        help="comma-separated: vllm, hf, or hf:N (HF with at most N responses per generate call)")
    parser.add_argument("--arch", choices=("tiny", "qwen2.5-vl-3b"), default="tiny",
                        help="model sizes: the tiny Qwen2.5-VL, or Qwen2.5-VL-3B's architecture (random weights)")
    parser.add_argument("--dtype", default=None, help="float32 or bfloat16 (default: float32 tiny, bfloat16 3B)")
    parser.add_argument("--model-override", action="append", default=[], metavar="KEY=VALUE",
                        help="a TinyQwen25VLConfig field on top of --arch (e.g. num_hidden_layers=2)")
    parser.add_argument("--json", type=Path, help="write the raw numbers here")
    args = parser.parse_args(argv)
    args.dtype = args.dtype or ("float32" if args.arch == "tiny" else "bfloat16")

    import logging
    import os

    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="lmmr1-bench-") as tmp:
        workdir = Path(tmp)
        data = make_data(workdir / "data", n=max(16, args.prompts * args.steps))
        model = build_model(args, workdir)
        results = [bench_backend(b, model, data, args, workdir) for b in args.backends.split(",")]

    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"\nsteps={args.steps} (median of steps 2..{args.steps}), P={args.prompts}, G={args.samples}, "
          f"max_new_tokens={args.new_tokens}, {args.arch} {' '.join(args.model_override)} in {args.dtype} on "
          f"{device}, half image prompts\n")
    print("| backend | step s | rollout s | reward s | train s | push s | rollout tok/s | train tok/s | "
          "peak GiB | max logprob gap |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['backend']} | {r['step_s']:.3f} | {r['rollout_s']:.3f} | {r['reward_s']:.3f} | "
              f"{r['train_s']:.3f} | {r['push_s']:.3f} | {r['rollout_tok_per_s']:.0f} | {r['train_tok_per_s']:.0f} | "
              f"{r['peak_memory_gib']:.2f} | {r['logprob_gap_max']:.1e} |")
    if len(results) == 2:
        a, b = results
        print(f"\nrollout speed-up {a['backend']} / {b['backend']}: {b['rollout_s'] / a['rollout_s']:.2f}x; "
              f"step speed-up: {b['step_s'] / a['step_s']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "results": results},
                                        indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
