"""Held-out accuracy of the tiny model through the default stages, GRPO vs NGRPO (docs/stages.md).

For each algorithm: `python -m lmmr1.stages.fre --config stages/default_fre[_ngrpo].yaml`, then
`python -m lmmr1.stages.mgt --config stages/default_mgt[_ngrpo].yaml` (from FRE's final/), then every checkpoint
on both held-out sets: the text eval (synthetic arithmetic, FRE's data/eval.jsonl) and the multimodal eval
(synthetic counting + expression images, MGT's data/eval.jsonl). Numbers the stages already logged are read
from metrics.jsonl (vLLM greedy); the two the stages do not log (multimodal eval before FRE, text eval after
MGT) are measured with HF greedy generation (`lmmr1.stages.common.evaluate_checkpoint`), which scores the same
responses as vLLM's greedy decode up to float ties.

    python bench/stages_accuracy.py --out runs/bench_stages [--algos grpo,ngrpo] [key=value ...]

`key=value` overrides go to every stage (e.g. train.steps=10). Writes OUT/results.json and OUT/results.md.
"""

from __future__ import annotations

import argparse
import json
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench_stages"))
    parser.add_argument("--algos", default="grpo,ngrpo")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    from lmmr1.stages.common import evaluate_checkpoint, load_config

    results = {}
    for algo in args.algos.split(","):
        fre_cfg, mgt_cfg = CONFIGS[algo]
        fre_dir, mgt_dir = args.out / algo / "fre", args.out / algo / "mgt"
        timings = {}
        for stage, config, run_dir, extra in (("fre", fre_cfg, fre_dir, []),
                                               ("mgt", mgt_cfg, mgt_dir, [f"stage.init_from={fre_dir}"])):
            start = time.time()
            cmd = [sys.executable, "-m", f"lmmr1.stages.{stage}", "--config", config, f"train.run_dir={run_dir}",
                   "train.progress=false", *extra, *args.overrides]
            print("$", " ".join(cmd), flush=True)
            subprocess.run(cmd, cwd=ROOT, check=True)
            timings[stage] = time.time() - start
        fre_rows, mgt_rows = metrics(fre_dir), metrics(mgt_dir)
        summary = json.loads((fre_dir / "stage_summary.json").read_text())
        mgt = load_config("mgt", str(ROOT / mgt_cfg), [])
        fre = load_config("fre", str(ROOT / fre_cfg), [])
        text_eval, mm_eval = [str(fre_dir / "data/eval.jsonl")], [str(mgt_dir / "data/eval.jsonl")]
        results[algo] = {
            "text": {
                "random init": summary.get("eval_before_warmup", {}).get("eval/accuracy"),
                "after warm-up (before FRE RL)": eval_at(fre_rows, 0),
                "after FRE": eval_at(fre_rows, -1),
                "after MGT": evaluate_checkpoint(mgt_dir / "final", text_eval, fre)["eval/accuracy"],
            },
            "multimodal": {
                "random init": evaluate_checkpoint("tiny", mm_eval, mgt)["eval/accuracy"],
                "after warm-up (before FRE RL)": evaluate_checkpoint(fre_dir / "warmup", mm_eval, mgt)["eval/accuracy"],
                "after FRE": eval_at(mgt_rows, 0),
                "after MGT": eval_at(mgt_rows, -1),
            },
            "text_eval_curve_fre": [(r["step"], r["eval/accuracy"]) for r in fre_rows if "eval/accuracy" in r],
            "mm_eval_curve_mgt": [(r["step"], r["eval/accuracy"]) for r in mgt_rows if "eval/accuracy" in r],
            "seconds": timings,
        }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["| algorithm | eval set | random init | after warm-up | after FRE | after MGT |", "|---|---|---|---|---|---|"]
    for algo, r in results.items():
        for split in ("text", "multimodal"):
            v = r[split]
            cell = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
            lines.append(f"| {algo} | {split} | {cell(v['random init'])} | {cell(v['after warm-up (before FRE RL)'])} | "
                         f"{cell(v['after FRE'])} | {cell(v['after MGT'])} |")
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
