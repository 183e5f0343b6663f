"""Held-out accuracy of the tiny model through the default stages, GRPO vs NGRPO, over seeds (docs/stages.md).

For each seed and algorithm: `python -m lmmr1.stages.fre --config stages/default_fre[_ngrpo].yaml train.seed=S`,
then `python -m lmmr1.stages.mgt --config stages/default_mgt[_ngrpo].yaml train.seed=S` (from FRE's final/), then
every checkpoint (each stage's warm-up and final) on both held-out sets: the text eval (synthetic `larger`, FRE's data/eval.jsonl) and the
multimodal eval (synthetic `shapes` images, MGT's data/eval.jsonl). The seed moves the warm-up's batches, the data
order and the rollout sampling; the model's initial weights and the train / held-out sets stay the same.
Numbers the stages already logged are read from metrics.jsonl (greedy, the rollout backend); the ones the stages
do not log (multimodal eval before FRE and after the warm-up, text eval after MGT) are measured with HF greedy
generation (`lmmr1.stages.common.evaluate_checkpoint`), which scores the same responses as vLLM's greedy decode
up to float ties.

    python bench/stages_accuracy.py --out runs/bench_stages [--algos grpo,ngrpo] [key=value ...] [--seeds 0 1 2]
        [--mgt-override key=value ...]

`key=value` overrides go to every stage (e.g. rollout.backend=hf); `--mgt-override` ones to MGT only (e.g.
synthetic.train_tasks=[shapes,larger], text replay during MGT). Writes OUT/results.json and OUT/results.md
(rewritten after every run, so a long sweep can be read while it goes). A stage whose run directory is finished
(stage_summary.json) is reused, not run again: delete OUT to measure from scratch.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"grpo": ("stages/default_fre.yaml", "stages/default_mgt.yaml"),
           "ngrpo": ("stages/default_fre_ngrpo.yaml", "stages/default_mgt_ngrpo.yaml")}


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def eval_at(rows: list[dict], which: int) -> float:
    evals = [r for r in rows if "eval/accuracy" in r]
    return evals[which]["eval/accuracy"]


COLUMNS = ("random init", "after FRE warm-up", "after FRE", "after MGT warm-up", "after MGT")


def run_pair(algo: str, seed: int, out: Path, overrides: list[str], mgt_overrides: list[str] = ()) -> dict:
    """FRE then MGT for one algorithm and seed; the held-out accuracies of every checkpoint."""
    from lmmr1.stages.common import evaluate_checkpoint, load_config

    fre_cfg, mgt_cfg = CONFIGS[algo]
    fre_dir, mgt_dir = out / f"seed{seed}" / algo / "fre", out / f"seed{seed}" / algo / "mgt"
    timings = {}
    for stage, config, run_dir, extra in (("fre", fre_cfg, fre_dir, []),
                                           ("mgt", mgt_cfg, mgt_dir, [f"stage.init_from={fre_dir}", *mgt_overrides])):
        if (run_dir / "stage_summary.json").is_file():
            print(f"reusing the finished run {run_dir} (delete it to run the stage again)", flush=True)
            continue
        start = time.time()
        cmd = [sys.executable, "-m", f"lmmr1.stages.{stage}", "--config", config, f"train.run_dir={run_dir}",
               f"train.seed={seed}", "train.progress=false", *overrides, *extra]
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, cwd=ROOT, check=True)
        timings[stage] = round(time.time() - start, 1)
    fre_rows, mgt_rows = metrics(fre_dir), metrics(mgt_dir)
    fre_summary = json.loads((fre_dir / "stage_summary.json").read_text())
    mgt_summary = json.loads((mgt_dir / "stage_summary.json").read_text())
    mgt = load_config("mgt", str(ROOT / mgt_cfg), [])
    fre = load_config("fre", str(ROOT / fre_cfg), [])
    text_eval, mm_eval = [str(fre_dir / "data/eval.jsonl")], [str(mgt_dir / "data/eval.jsonl")]
    mgt_warmed = (mgt_dir / "warmup" / "config.json").is_file()
    text_after = lambda checkpoint: evaluate_checkpoint(checkpoint, text_eval, fre)["eval/accuracy"]  # noqa: E731
    return {
        "text": dict(zip(COLUMNS, (
            fre_summary.get("eval_before_warmup", {}).get("eval/accuracy"),
            eval_at(fre_rows, 0),
            eval_at(fre_rows, -1),
            text_after(mgt_dir / "warmup") if mgt_warmed else eval_at(fre_rows, -1),
            text_after(mgt_dir / "final")))),
        "multimodal": dict(zip(COLUMNS, (
            evaluate_checkpoint("tiny", mm_eval, mgt)["eval/accuracy"],
            evaluate_checkpoint(fre_dir / "warmup", mm_eval, mgt)["eval/accuracy"],
            mgt_summary["eval_before_warmup"]["eval/accuracy"] if mgt_warmed else eval_at(mgt_rows, 0),
            eval_at(mgt_rows, 0),
            eval_at(mgt_rows, -1)))),
        "text_eval_curve_fre": [(r["step"], r["eval/accuracy"]) for r in fre_rows if "eval/accuracy" in r],
        "mm_eval_curve_mgt": [(r["step"], r["eval/accuracy"]) for r in mgt_rows if "eval/accuracy" in r],
        "seconds": timings,
    }


def table(results: dict) -> str:
    """One row per (algorithm, eval set, seed), then the mean over seeds."""
    cell = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
    lines = ["| algorithm | eval set | seed | " + " | ".join(COLUMNS) + " |", "|---" * (3 + len(COLUMNS)) + "|"]
    for algo in sorted({a for per_seed in results.values() for a in per_seed}):
        seeds = [s for s in results if algo in results[s]]
        for split in ("text", "multimodal"):
            for seed in seeds:
                v = results[seed][algo][split]
                lines.append(f"| {algo} | {split} | {seed} | " + " | ".join(cell(v[c]) for c in COLUMNS) + " |")
            if len(seeds) > 1:
                means = [statistics.mean(results[s][algo][split][c] for s in seeds) for c in COLUMNS]
                lines.append(f"| {algo} | {split} | mean | " + " | ".join(f"**{m:.3f}**" for m in means) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench_stages"))
    parser.add_argument("--algos", default="grpo,ngrpo")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--mgt-override", action="append", default=[], metavar="KEY=VALUE",
                        help="an override for the MGT stage only (repeatable)")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()  # key=value overrides go before --seeds (it takes every number after it)

    results: dict[str, dict] = {}
    args.out.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for algo in args.algos.split(","):
            results.setdefault(str(seed), {})[algo] = run_pair(algo, seed, args.out, args.overrides, args.mgt_override)
            (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
            (args.out / "results.md").write_text(table(results))
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
