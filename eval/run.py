"""Evaluate a model on a suite: `python -m eval.run --model DIR --suite NAME_OR_YAML [--out DIR] [key=value ...]`.

    --model   an HF checkpoint directory (model + processor), "tiny" (lmmr1's tiny Qwen2.5-VL), a stage's run
              directory (a folder with final/ and config.json: final/ is evaluated with the run's dtype, context
              length and backend settings; its config's `eval.suites`, when present, is the default suite), or a
              stage config YAML (stages/<name>.yaml: its train.run_dir is taken as the run directory)
    --suite   a built-in suite (eval.suites.BUILTIN_SUITES) or a suite YAML (format in eval/suites.py); repeatable
              (one engine serves all suites, started with the first suite's backend settings)
    key=value EvalConfig fields (eval/suites.py), e.g. n_samples=16 temperature=0.6 benchmarks.mathvista=/data/MathVista
              extractor=judge judge_model=/ckpt/Qwen2.5-14B-Instruct (answers extracted by a judge model)

The steps, in order:
  1. resolve the model and the suite's settings (defaults < suite < run directory < command line)
  2. start one rollout backend (vLLM in-process, or HF generate)
     (and, when a task uses extractor=judge, the judge model's backend: eval.judge)
  3. for each task: load its rows (bad rows counted and excluded), apply the prompt template, encode, generate
     n samples per question, grade each sample (math-verify reward, or the multiple-choice grader; with the
     judge, on the answer the judge extracted, falling back to the rules), compute the metrics
     (eval.metrics), overall and per published subset of the benchmark; football tasks play seeded episodes
     with the model choosing every action
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
from eval.benchmarks import (
    UNKNOWN_SUBSET, Item, LoadedBenchmark, grade_at_precision, grade_choice, iter_items, load_benchmark,
)
from eval.judge import JudgeExtractor, TextProcessor, grade_sample, question_text
from eval.suites import EvalConfig, Suite, apply_template, config_dict, load_suite, task_extractor, task_name
from lmmr1.config import ConfigError
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
    ("rollout", "hf_batch_sequences"): "hf_batch_sequences",
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


def is_vision_model(model_dir: Path) -> bool:
    """Whether the checkpoint is a VLM (its config has a vision_config) rather than a text-only LLM."""
    from transformers import AutoConfig

    return hasattr(AutoConfig.from_pretrained(model_dir), "vision_config")


def load_processor(model_dir: Path):
    """The checkpoint's processor; a text-only model's tokenizer wrapped as one (eval.judge.TextProcessor)."""
    from transformers import AutoProcessor, AutoTokenizer

    if not is_vision_model(model_dir):
        return TextProcessor(AutoTokenizer.from_pretrained(model_dir))
    return AutoProcessor.from_pretrained(model_dir)


def load_hf_model(model_dir: Path, dtype_name: str):
    """The checkpoint as a transformers model in eval mode on the GPU (else the CPU): a VLM, or a text-only
    causal LM (a judge such as Qwen2.5-14B-Instruct)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    dtypes = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype_name not in dtypes:
        raise ValueError(f"dtype={dtype_name!r} is not one of {sorted(dtypes)}")
    cls = AutoModelForImageTextToText if is_vision_model(model_dir) else AutoModelForCausalLM
    model = cls.from_pretrained(model_dir, dtype=dtypes[dtype_name])
    return model.to("cuda" if torch.cuda.is_available() else "cpu").eval()


def build_backend(model_dir: Path, cfg: EvalConfig):
    """(rollout backend, processor) for `model_dir`."""
    processor = load_processor(model_dir)
    if cfg.backend == "hf":
        return get_rollout_backend("hf")(load_hf_model(model_dir, cfg.dtype), processor,
                                         max_batch_sequences=cfg.hf_batch_sequences), processor
    backend = get_rollout_backend(cfg.backend)(
        model_dir, dtype=cfg.dtype, max_model_len=cfg.max_model_len, seed=cfg.seed,
        max_images_per_prompt=cfg.max_images_per_prompt, kv_cache_memory_bytes=cfg.kv_cache_memory_mb << 20,
        gpu_memory_utilization=cfg.gpu_memory_utilization,
    )
    return backend, processor


def check_judge_memory(cfg: EvalConfig) -> None:
    """Two vLLM engines on one GPU (the evaluated model's and the judge's) must fit: each takes its
    gpu_memory_utilization fraction of the device. Checked before either engine starts."""
    if cfg.backend != "vllm" or cfg.judge_backend != "vllm" or cfg.judge_model in ("", "self"):
        return
    import torch

    total = cfg.gpu_memory_utilization + cfg.judge_gpu_memory_utilization
    if torch.cuda.is_available() and total > 0.95:
        raise ConfigError(
            f"gpu_memory_utilization={cfg.gpu_memory_utilization} + judge_gpu_memory_utilization="
            f"{cfg.judge_gpu_memory_utilization} = {total:.2f} of one GPU for two vLLM engines; lower them (e.g. "
            "gpu_memory_utilization=0.5 judge_gpu_memory_utilization=0.4), or use judge_backend=hf or judge_model=self"
        )


def build_judge(cfg: EvalConfig, model_dir: Path, backend=None, processor=None) -> JudgeExtractor:
    """The judge of extractor=judge: `judge_model` "self" reuses the evaluated model's backend; otherwise a
    local checkpoint ("tiny" or a directory) behind its own vLLM engine or HF model (`judge_backend`)."""
    limits = dict(max_new_tokens=cfg.judge_max_new_tokens, batch_size=cfg.batch_size,
                  max_prompt_len=cfg.judge_max_model_len - cfg.judge_max_new_tokens,
                  max_response_chars=cfg.judge_max_response_chars)
    if cfg.judge_model == "self":
        if backend is None:
            backend, processor = build_backend(model_dir, cfg)
        return JudgeExtractor(backend, processor, name=f"self ({model_dir})", **limits)
    check_judge_memory(cfg)
    judge_dir, _, _ = resolve_model(cfg.judge_model)
    judge_processor = load_processor(judge_dir)
    if cfg.judge_backend == "hf":
        judge_backend = get_rollout_backend("hf")(load_hf_model(judge_dir, cfg.judge_dtype), judge_processor,
                                                  max_batch_sequences=cfg.hf_batch_sequences)
    else:
        judge_backend = get_rollout_backend("vllm")(
            judge_dir, dtype=cfg.judge_dtype, max_model_len=cfg.judge_max_model_len, seed=cfg.seed,
            max_images_per_prompt=1, kv_cache_memory_bytes=cfg.kv_cache_memory_mb << 20,
            gpu_memory_utilization=cfg.judge_gpu_memory_utilization,
        )
    return JudgeExtractor(judge_backend, judge_processor, name=str(judge_dir), **limits)


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
    """Multiple choice by letter; free-form by the reward's verifier, then (a record with a `precision`, as
    MathVista's float answers) the benchmark's rounding rule."""
    if record.task == "multiple_choice":
        return grade_choice(response, record)
    return grade_at_precision(response, record, reward(response, record))


def batch_seed(seed: int, start: int, n_samples: int) -> int:
    """The sampling seed of the batch whose first prompt is the task's prompt `start`. The backend gives prompt i
    of the batch seeds base + i * n + 0..n-1, so prompt p of the task gets seed + p * n + 0..n-1: no two samples
    of a task share a random stream, whatever the batch size."""
    return seed + start * n_samples


def grade_responses(items: list[Item], texts: list[list[str]], reward, judge: JudgeExtractor | None,
                    seed: int) -> list[list[dict[str, Any]]]:
    """Grade every sample of a batch: {"result", "extraction" ("rule" | "judge" | "fallback" | "abstained"),
    "reason", "judge_output", "judge_answer"} per sample. Without a judge, the rules grade the whole response; with one,
    every non-abstaining sample's answer is extracted by the judge first (eval.judge, one batched call)."""
    rule = lambda text, record: grade(text, record, reward)  # noqa: E731
    if judge is None:
        return [[{"result": rule(t, item.record), "extraction": "rule", "reason": "ok", "judge_output": None,
                  "judge_answer": None} for t in sample_texts] for item, sample_texts in zip(items, texts)]
    asked = [(i, j) for i, sample_texts in enumerate(texts) for j, t in enumerate(sample_texts)
             if not detect_abstention(t).abstained]
    parses = judge.extract([question_text(items[i].record) for i, _ in asked], [texts[i][j] for i, j in asked],
                           seed=seed)
    by_sample = dict(zip(asked, parses))
    graded = []
    for i, (item, sample_texts) in enumerate(zip(items, texts)):
        row = []
        for j, t in enumerate(sample_texts):
            parse = by_sample.get((i, j))
            result, method, reason = grade_sample(t, item.record, parse, rule)
            row.append({"result": result, "extraction": method, "reason": reason,
                        "judge_output": None if parse is None else parse.raw,
                        "judge_answer": None if parse is None else parse.answer})
        graded.append(row)
    return graded


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


def subset_unknown_counts(subset_rows: list[dict]) -> dict[str, int]:
    """Questions per subset field whose value is missing (UNKNOWN_SUBSET): scored, and counted here."""
    fields = list(dict.fromkeys(f for row in subset_rows for f in row))
    return {f: sum(row.get(f, UNKNOWN_SUBSET) == UNKNOWN_SUBSET for row in subset_rows) for f in fields}


def extraction_summary(extractor: str, methods: list[str], reasons: list[str], judge) -> dict[str, Any]:
    """How the graded answers were found: {"extractor"} for the rules; with the judge, the judge's name and
    the counts of samples graded on the judge's answer, fallen back to the rules (with the reasons), and
    abstaining (graded by the rules, the judge not asked)."""
    if extractor == "rule":
        return {"extractor": "rule"}
    counts = Counter(methods)
    return {"extractor": "judge", "judge_model": judge.name, "judge": counts["judge"],
            "fallback": counts["fallback"], "abstained": counts["abstained"],
            "fallback_reasons": dict(sorted(Counter(r for m, r in zip(methods, reasons) if m == "fallback").items()))}


def evaluate_qa(task: dict, backend, processor, cfg: EvalConfig, reward, out_dir: Path,
                judge: JudgeExtractor | None = None) -> dict[str, Any]:
    """One question-answering task: load, encode, generate, grade (with `judge` when the task's extractor is
    "judge"), score overall and per subset. Returns the task's entry of results.json."""
    extractor = task_extractor(task, cfg)
    if extractor == "judge" and judge is None:
        raise ValueError(f"task {task_name(task)!r} uses extractor=judge but no judge was built")
    loaded = load_task_items(task, cfg, out_dir)
    template = task.get("prompt") or ("record" if task["kind"] == "synthetic" else cfg.prompt)
    items, prompts = encode_items(loaded.items, template, processor, cfg, loaded)
    sampling = SamplingConfig(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p)
    correct, n, outcomes, abstained, unanswerable = [], [], [], [], []
    subset_rows, methods, reasons = [], [], []
    samples_file = out_dir / "samples" / f"{loaded.name}.jsonl"
    samples_file.parent.mkdir(parents=True, exist_ok=True)
    with samples_file.open("w", encoding="utf-8") as f:
        for start in range(0, len(prompts), cfg.batch_size):
            batch = prompts[start:start + cfg.batch_size]
            batch_items = items[start:start + cfg.batch_size]
            generated = backend.generate(batch, cfg.n_samples, sampling, seed=batch_seed(cfg.seed, start, cfg.n_samples))
            texts = [[clean_response(s.text) for s in samples] for samples in generated]
            graded = grade_responses(batch_items, texts, reward, judge if extractor == "judge" else None,
                                     seed=cfg.seed + start)
            for item, sample_texts, grades in zip(batch_items, texts, graded):
                results = [g["result"] for g in grades]
                correct.append(sum(r.outcome == "correct" for r in results))
                n.append(len(results))
                if "subsets" in item.record.meta:
                    subset_rows.append(item.record.meta["subsets"])
                for t, g in zip(sample_texts, grades):
                    outcomes.append(g["result"].outcome)
                    abstained.append(detect_abstention(t).abstained)
                    unanswerable.append(item.record.answer == UNANSWERABLE)
                    methods.append(g["extraction"])
                    reasons.append(g["reason"])
                line = {"where": item.where, "answer": item.record.answer, "responses": sample_texts,
                        "outcomes": [r.outcome for r in results], "extraction": [g["extraction"] for g in grades]}
                if "subsets" in item.record.meta:
                    line["subsets"] = item.record.meta["subsets"]
                if extractor == "judge":
                    line["judge_answers"] = [g["judge_answer"] for g in grades]
                    line["judge_outputs"] = [g["judge_output"] for g in grades]
                f.write(json.dumps(line, ensure_ascii=False) + "\n")
    if loaded.excluded:
        log.warning("%s: excluded %d row(s): %s", loaded.name, sum(loaded.excluded.values()), dict(loaded.excluded))
    result = {"name": loaded.name, "kind": "qa", "source": loaded.source, "prompt": template,
              "rows": loaded.rows, "scored": len(items), "n_samples": cfg.n_samples,
              "excluded": dict(loaded.excluded), "excluded_total": sum(loaded.excluded.values()),
              "excluded_rows": loaded.excluded_rows,
              "extraction": extraction_summary(extractor, methods, reasons, judge),
              "metrics": qa_metrics(correct, n, outcomes, abstained, unanswerable)}
    if subset_rows and len(subset_rows) == len(items):
        result["subsets"] = M.subset_breakdown(subset_rows, correct, n)
        result["subset_unknown"] = subset_unknown_counts(subset_rows)
    return result


def run_suite(suite: Suite, model_dir: Path, out_dir: Path, backend=None, processor=None,
              judge: JudgeExtractor | None = None) -> dict[str, Any]:
    """Evaluate every task of `suite`; write the report into `out_dir`; return the results. A backend and
    processor may be given (tests, stages sharing their engine); otherwise one is started from `model_dir`.
    Likewise the judge of extractor=judge tasks: given, or built from the config (`build_judge`)."""
    from eval.football import evaluate_football
    from eval.report import write_report

    cfg = suite.config
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    if backend is None:
        backend, processor = build_backend(model_dir, cfg)
    reward = get_reward(cfg.reward, RewardConfig(**cfg.reward_args))
    if judge is None and any(task_extractor(t, cfg) == "judge" for t in suite.tasks):
        judge = build_judge(cfg, model_dir, backend, processor)
    tasks = []
    for task in suite.tasks:
        t0 = time.time()
        if task["kind"] == "football":
            result = evaluate_football(task, backend, processor, cfg)
        else:
            result = evaluate_qa(task, backend, processor, cfg, reward, out_dir, judge)
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
    backend = processor = judge = None
    for spec in suites:
        suite = load_suite(spec, args.overrides, base_config=base)
        if any(task_extractor(t, suite.config) == "judge" for t in suite.tasks):
            check_judge_memory(suite.config)  # before the first engine starts
        if backend is None:
            backend, processor = build_backend(model_dir, suite.config)
        if judge is None and any(task_extractor(t, suite.config) == "judge" for t in suite.tasks):
            judge = build_judge(suite.config, model_dir, backend, processor)  # one judge serves all suites
        # One suite with --out: that folder; otherwise one folder per suite under --out (or eval_results/).
        if args.out and len(suites) == 1:
            out = args.out
        else:
            out = (args.out or Path("eval_results")) / f"{suite.name}-{stamp}"
        results = run_suite(suite, model_dir, Path(out), backend, processor, judge)
        print(f"{suite.name}: wrote {out}/results.json, report.md, plots/ ({results['summary']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
