"""Evaluate a model on a suite: `python -m eval.run --model DIR --suite NAME_OR_YAML [--out DIR] [key=value ...]`.

    --model   an HF checkpoint directory (model + processor), "tiny" (lmmr1's tiny Qwen2.5-VL), a stage's run
              directory (a folder with final/ and config.json: final/ is evaluated with the run's dtype, context
              length and backend settings; its config's `eval.suites`, when present, is the default suite), or a
              stage config YAML (stages/<name>.yaml: its train.run_dir is taken as the run directory)
    --suite   a built-in suite (eval.suites.BUILTIN_SUITES) or a suite YAML (format in eval/suites.py); repeatable
              (one engine serves all suites, started with the first suite's backend settings)
    key=value EvalConfig fields (eval/suites.py), e.g. n_samples=16 temperature=0.6 benchmarks.mathvista=/data/MathVista

The steps, in order:
  1. resolve the model and the suite's settings (defaults < suite < run directory < command line)
  2. start one rollout backend (vLLM in-process, or HF generate)
  3. for each task: load its rows (bad rows counted and excluded), apply the prompt template, encode, generate
     n samples per question, grade each sample (math-verify reward, or the multiple-choice grader), compute
     the metrics (eval.metrics); football tasks play seeded episodes with the model choosing every action
  4. write results.json (every number + the config), report.md, plots/*.png and samples/<task>.jsonl
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from eval import metrics as M
from eval.benchmarks import Item, LoadedBenchmark, grade_choice, iter_items, load_benchmark
from eval.suites import EvalConfig, Suite, apply_template, config_dict, load_suite, task_name
from lmmr1.data.images import ImageConfig, ImageLoadError, load_record_images
from lmmr1.data.records import UNANSWERABLE
from lmmr1.rewards import RewardConfig, get_reward
from lmmr1.rewards.rules import clean_response, detect_abstention
from lmmr1.rollout import PromptTooLongError, SamplingConfig, encode_prompt, get_rollout_backend

log = logging.getLogger("eval.run")

RUN_CONFIG_KEYS = {  # run directory config.json -> EvalConfig
    ("model", "dtype"): "dtype",
    ("rollout", "backend"): "backend",
    ("rollout", "max_model_len"): "max_model_len",
    ("rollout", "kv_cache_memory_mb"): "kv_cache_memory_mb",
    ("rollout", "gpu_memory_utilization"): "gpu_memory_utilization",
    ("data", "max_prompt_len"): "max_prompt_len",
}


# ------------------------------------------------------------------------------------ 1. model and suite


def resolve_model(model: str) -> tuple[Path, dict[str, Any], list[str]]:
    """(checkpoint dir, EvalConfig defaults taken from a run directory, the run's configured eval suites)."""
    if model == "tiny":
        from lmmr1.models.tiny import tiny_qwen25vl

        return tiny_qwen25vl(), {}, []
    path = Path(model)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        # A stage config: evaluate what it produced, <train.run_dir>/final (run_dir is relative to the cwd,
        # as the stage entry points read it).
        import yaml

        stage = yaml.safe_load(path.read_text()) or {}
        run_dir = Path(str((stage.get("train") or {}).get("run_dir") or "runs/default"))
        if not (run_dir / "final" / "config.json").is_file():
            raise FileNotFoundError(
                f"--model {model}: the stage's run directory {run_dir} has no final/ checkpoint yet; run the stage "
                f"first (python -m lmmr1.stages.<fre|mgt> --config {model}) or pass a checkpoint directory"
            )
        checkpoint, base, suites = resolve_model(str(run_dir))
        return checkpoint, base, suites or list((stage.get("eval") or {}).get("suites") or [])
    if (path / "final" / "config.json").is_file() and (path / "config.json").is_file():
        run_config = json.loads((path / "config.json").read_text())
        base = {}
        for (section, key), name in RUN_CONFIG_KEYS.items():
            value = (run_config.get(section) or {}).get(key)
            if value is not None:
                base[name] = value
        suites = list((run_config.get("eval") or {}).get("suites") or [])
        return path / "final", base, suites
    if (path / "config.json").is_file():
        return path, {}, []
    raise FileNotFoundError(
        f"--model {model}: not an HF checkpoint (no {path / 'config.json'}) nor a run directory (no "
        f"{path / 'final' / 'config.json'}); nothing is downloaded: pass a local directory, or --model tiny"
    )


# ------------------------------------------------------------------------------------------- 2. backend


def build_backend(model_dir: Path, cfg: EvalConfig):
    """(rollout backend, processor) for `model_dir`."""
    import torch
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(model_dir)
    if cfg.backend == "hf":
        from transformers import AutoModelForImageTextToText

        dtypes = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
        if cfg.dtype not in dtypes:
            raise ValueError(f"dtype={cfg.dtype!r} is not one of {sorted(dtypes)}")
        dtype = dtypes[cfg.dtype]
        model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=dtype)
        model = model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
        return get_rollout_backend("hf")(model, processor), processor
    backend = get_rollout_backend(cfg.backend)(
        model_dir, dtype=cfg.dtype, max_model_len=cfg.max_model_len, seed=cfg.seed,
        max_images_per_prompt=cfg.max_images_per_prompt, kv_cache_memory_bytes=cfg.kv_cache_memory_mb << 20,
        gpu_memory_utilization=cfg.gpu_memory_utilization,
    )
    return backend, processor


# ----------------------------------------------------------------------------------------------- 3. tasks


def load_task_items(task: dict, cfg: EvalConfig, out_dir: Path) -> LoadedBenchmark:
    """The scorable items of a benchmark or synthetic task."""
    name = task_name(task)
    if task["kind"] == "synthetic":
        from data_pipelines.synthetic import generate

        file = out_dir / "data" / name / "records.jsonl"
        records = generate(task["synthetic"], int(task.get("n", 8)), int(task.get("seed", 0)), file,
                           difficulty=task.get("difficulty", 1),
                           unanswerable_fraction=float(task.get("unanswerable_fraction", 0.0)),
                           image_size=int(task.get("image_size", 112)))
        loaded = LoadedBenchmark(name, iter_items(records, file.parent, str(file)),
                                 source=f"synthetic/{task['synthetic']}")
        loaded.rows = len(records)
        return loaded
    bench = task["benchmark"]
    path = task.get("path") or cfg.benchmarks.get(bench) or str(Path(cfg.benchmarks_root) / bench)
    limit = task.get("limit") or cfg.limit or None
    loaded = load_benchmark(bench, path, out_dir / "image_cache", split=task.get("split"), limit=limit)
    loaded.name = name
    return loaded


def encode_items(items: list[Item], template: str, processor, cfg: EvalConfig, loaded: LoadedBenchmark):
    """(items, encoded prompts) of the rows that become prompts; image and length failures are excluded."""
    image_config = ImageConfig.from_processor(processor)
    kept, prompts = [], []
    for item in items:
        record = apply_template(item.record, template)
        try:
            images = load_record_images(record.images, item.root, image_config)
            prompts.append(encode_prompt(processor, record.messages, images, cfg.max_prompt_len))
        except ImageLoadError as err:
            loaded.exclude(item.where, "missing_image" if err.reason == "missing" else f"image_{err.reason}", str(err))
            continue
        except PromptTooLongError as err:
            loaded.exclude(item.where, "prompt_too_long", str(err))
            continue
        kept.append(Item(record, item.root, item.where))
    return kept, prompts


def grade(response: str, record, reward) -> Any:
    return grade_choice(response, record) if record.task == "multiple_choice" else reward(response, record)


def qa_metrics(correct: list[int], n: list[int], outcomes: list[str], abstained: list[bool],
               unanswerable: list[bool]) -> dict[str, Any]:
    """Every metric of a question-answering task (see eval.metrics)."""
    curve = M.pass_at_k_curve(correct, n)
    out: dict[str, Any] = {"accuracy": M.accuracy(correct, n), "pass_at_k": {str(k): v for k, v in curve.items()},
                           "pass_at_k_auc": M.pass_at_k_auc(curve), **{f"ucpo_{k}": v for k, v in
                                                                        M.ucpo_metrics(outcomes).items()}}
    out["outcomes"] = dict(Counter(outcomes))
    if any(unanswerable):
        un = [a for a, u in zip(abstained, unanswerable) if u]
        ans = [a for a, u in zip(abstained, unanswerable) if not u]
        out["abstention_rate_unanswerable"] = sum(un) / len(un)
        out["abstention_rate_answerable"] = sum(ans) / len(ans) if ans else 0.0
    return out


def evaluate_qa(task: dict, backend, processor, cfg: EvalConfig, reward, out_dir: Path) -> dict[str, Any]:
    loaded = load_task_items(task, cfg, out_dir)
    template = task.get("prompt") or ("record" if task["kind"] == "synthetic" else cfg.prompt)
    items, prompts = encode_items(loaded.items, template, processor, cfg, loaded)
    sampling = SamplingConfig(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p)
    correct, n, outcomes, abstained, unanswerable = [], [], [], [], []
    samples_file = out_dir / "samples" / f"{loaded.name}.jsonl"
    samples_file.parent.mkdir(parents=True, exist_ok=True)
    with samples_file.open("w", encoding="utf-8") as f:
        for start in range(0, len(prompts), cfg.batch_size):
            batch = prompts[start:start + cfg.batch_size]
            generated = backend.generate(batch, cfg.n_samples, sampling, seed=cfg.seed + start)
            for item, samples in zip(items[start:start + cfg.batch_size], generated):
                texts = [clean_response(s.text) for s in samples]
                results = [grade(t, item.record, reward) for t in texts]
                correct.append(sum(r.outcome == "correct" for r in results))
                n.append(len(results))
                for t, r in zip(texts, results):
                    outcomes.append(r.outcome)
                    abstained.append(detect_abstention(t).abstained)
                    unanswerable.append(item.record.answer == UNANSWERABLE)
                f.write(json.dumps({"where": item.where, "answer": item.record.answer,
                                    "responses": texts, "outcomes": [r.outcome for r in results]},
                                   ensure_ascii=False) + "\n")
    if loaded.excluded:
        log.warning("%s: excluded %d row(s): %s", loaded.name, sum(loaded.excluded.values()), dict(loaded.excluded))
    return {"name": loaded.name, "kind": "qa", "source": loaded.source, "prompt": template,
            "rows": loaded.rows, "scored": len(items), "n_samples": cfg.n_samples,
            "excluded": dict(loaded.excluded), "excluded_total": sum(loaded.excluded.values()),
            "excluded_rows": loaded.excluded_rows,
            "metrics": qa_metrics(correct, n, outcomes, abstained, unanswerable)}


def run_suite(suite: Suite, model_dir: Path, out_dir: Path, backend=None, processor=None) -> dict[str, Any]:
    """Evaluate every task of `suite`; write the report into `out_dir`; return the results. A backend and
    processor may be given (tests, stages sharing their engine); otherwise one is started from `model_dir`."""
    from eval.football import evaluate_football
    from eval.report import write_report

    cfg = suite.config
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    if backend is None:
        backend, processor = build_backend(model_dir, cfg)
    reward = get_reward(cfg.reward, RewardConfig(**cfg.reward_args))
    tasks = []
    for task in suite.tasks:
        t0 = time.time()
        if task["kind"] == "football":
            result = evaluate_football(task, backend, processor, cfg)
        else:
            result = evaluate_qa(task, backend, processor, cfg, reward, out_dir)
        result["seconds"] = round(time.time() - t0, 2)
        log.info("%s: %s", result["name"], headline(result))
        tasks.append(result)
    results = {"suite": suite.name, "model": str(model_dir), "config": config_dict(cfg),
               "tasks_spec": suite.tasks, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
               "seconds": round(time.time() - started, 2), "tasks": tasks, "summary": summarize(tasks)}
    write_report(results, out_dir)
    return results


def headline(result: dict[str, Any]) -> str:
    m = result["metrics"]
    if result["kind"] == "football":
        return f"mean reward {m['mean_reward']:.3f} over {m['episodes']} episode(s)"
    return f"accuracy {m['accuracy']:.4f} on {result['scored']} question(s), {result['excluded_total']} excluded"


def summarize(tasks: list[dict[str, Any]]) -> dict[str, Any]:
    """Unweighted means over QA tasks (the papers average per-benchmark scores) and football's mean reward."""
    qa = [t["metrics"] for t in tasks if t["kind"] == "qa" and t["scored"]]
    summary: dict[str, Any] = {}
    for key in ("accuracy", "pass_at_k_auc", "ucpo_paq", "ucpo_f1", "ucpo_abstention_rate"):
        if qa:
            summary[f"mean_{key}"] = sum(m[key] for m in qa) / len(qa)
    football = [t["metrics"]["mean_reward"] for t in tasks if t["kind"] == "football"]
    if football:
        summary["football_mean_reward"] = sum(football) / len(football)
    return summary


# ---------------------------------------------------------------------------------------------- the CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.run", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--model", required=True, help="HF checkpoint dir, 'tiny', or a run directory")
    parser.add_argument("--suite", action="append", help="built-in suite name or suite YAML (repeatable)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default eval_results/<suite>-<time>)")
    parser.add_argument("overrides", nargs="*", help="EvalConfig key=value")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    model_dir, base, run_suites = resolve_model(args.model)
    suites = args.suite or run_suites
    if not suites:
        parser.error("--suite is required (the run directory's config lists no eval suites)")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backend = processor = None
    for spec in suites:
        suite = load_suite(spec, args.overrides, base_config=base)
        if backend is None:
            backend, processor = build_backend(model_dir, suite.config)
        # One suite with --out: that folder; otherwise one folder per suite under --out (or eval_results/).
        if args.out and len(suites) == 1:
            out = args.out
        else:
            out = (args.out or Path("eval_results")) / f"{suite.name}-{stamp}"
        results = run_suite(suite, model_dir, Path(out), backend, processor)
        print(f"{suite.name}: wrote {out}/results.json, report.md, plots/ ({results['summary']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
