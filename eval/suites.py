"""Eval settings and suites: what to evaluate, with which prompt and sampling.

A suite is a YAML file (or a built-in name) of this shape:

    name: lmm-r1-mm
    config:                      # EvalConfig fields (defaults for this suite; command-line key=value wins)
      max_new_tokens: 4096
    tasks:
      - benchmark: mathvista     # a loader of eval.benchmarks; path defaults to <benchmarks_root>/<name>
        path: /data/MathVista    # optional (or benchmarks.mathvista=PATH on the command line)
        split: testmini          # optional: the loader's published split
        limit: 200               # optional: first N scorable rows
        prompt: r1               # optional: r1 | cot | abstain | record (default: config.prompt)
        extractor: judge         # optional: rule | judge (default: config.extractor)
      - synthetic: arithmetic    # data_pipelines.synthetic task, generated into the output folder
        n: 8
        seed: 0
        difficulty: 1            # a level or a range "1-3"
        unanswerable_fraction: 0.0
        name: synthetic_text     # optional: the name in the report
      - football: [academy_empty_goal_close]   # scenarios (gfootball, lmmr1 or a .py path)
        seeds: [0, 1]            # one episode per seed and scenario
        max_turns: 4
        image_size: [672, 336]   # optional: width, height of the top-down picture (multiples of 28)

Prompt templates (`prompt`):
    r1       LMM-R1's system prompt (`lmmr1.data.prompts.LMM_R1_SYSTEM_PROMPT`), the question as the user turn
    cot      no system prompt; the question + "Please reason step by step, and put your final answer within \\boxed{}."
    abstain  LMM-R1's prompt plus the licence to answer "I don't know" (`ABSTAIN_SYSTEM_PROMPT`)
    record   the record's own messages (synthetic records carry lmm_r1 or abstain already)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmmr1.config import ConfigError, apply_overrides, from_dict
from lmmr1.data.prompts import ABSTAIN_SYSTEM_PROMPT, LMM_R1_SYSTEM_PROMPT
from lmmr1.data.records import Record, validate_record

COT_SUFFIX = "\nPlease reason step by step, and put your final answer within \\boxed{}."
PROMPT_TEMPLATES = ("r1", "cot", "abstain", "record")
EXTRACTORS = ("rule", "judge")
JUDGE_BACKENDS = ("vllm", "hf")


@dataclass
class EvalConfig:
    """Settings of one eval run (`python -m eval.run ... key=value`)."""

    backend: str = "vllm"
    """"vllm" (in-process vLLM) or "hf" (transformers generate; slow, no extra engine)."""
    n_samples: int = 1
    """Samples per question. 1 with temperature 0 is greedy (LMM-R1's protocol); NGRPO's pass@k uses 256."""
    temperature: float = 0.0
    """0 = greedy. NGRPO's pass@k protocol: 0.6 (with top_p 0.95)."""
    top_p: float = 1.0
    max_new_tokens: int = 1024
    """LMM-R1's eval uses 4096 (multimodal) and 8192 (text); small values keep CPU runs short."""
    max_model_len: int = 4096
    """vLLM context length (prompt + response)."""
    max_prompt_len: int = 3072
    """Longest prompt in tokens (image tokens included); longer rows are excluded as `prompt_too_long`."""
    dtype: str = "auto"
    """vLLM / HF dtype ("auto", "bfloat16", "float32")."""
    seed: int = 0
    """Sampling seed (GPQA's option order is fixed: shuffled per row with seed 0)."""
    prompt: str = "r1"
    """Default prompt template of benchmark tasks: r1 | cot | abstain | record (a task's `prompt` wins)."""
    limit: int = 0
    """First N scorable rows of every benchmark (0 = all)."""
    batch_size: int = 64
    """Prompts per generate call."""
    benchmarks_root: str = "data/benchmarks"
    """Folder holding one folder per benchmark (mathvista/, mathverse/, ...) when a task gives no path."""
    benchmarks: dict[str, str] = field(default_factory=dict)
    """Per-benchmark local paths, e.g. benchmarks.mathvista=/data/MathVista."""
    reward: str = "math_uncertainty"
    """lmmr1 reward grading free-form answers (math-verify; abstentions are `uncertain`)."""
    reward_args: dict[str, Any] = field(default_factory=dict)
    """Fields of lmmr1.rewards.RewardConfig."""
    kv_cache_memory_mb: int = 256
    """vLLM KV cache on a CPU (on a GPU, gpu_memory_utilization is used instead)."""
    gpu_memory_utilization: float = 0.8
    hf_batch_sequences: int = 64
    """HF backend (model and judge): the most responses per `generate` call; lower it when HF generation runs
    out of memory."""
    max_images_per_prompt: int = 5
    """vLLM's limit_mm_per_prompt (LMM-R1's eval: limit_img_num=5)."""
    football_image: str = "topdown"
    """What the football model sees: topdown | engine | both | none."""
    plots: bool = True
    """Write PNG plots."""
    extractor: str = "rule"
    """How a response's final answer is found before grading: "rule" (the last <answer> block / \\boxed{},
    lmmr1.rewards and eval.benchmarks.grade_choice) or "judge" (a judge model extracts it first, MathVista's
    and MathVerse's protocol; unusable judge replies fall back to the rules; eval/judge.py). A task's
    `extractor` wins."""
    judge_model: str = ""
    """The judge (extractor=judge): an HF checkpoint directory (a VLM or a text-only LLM), "tiny", or "self"
    (the evaluated model's own engine: no second engine). Local only: nothing downloads."""
    judge_backend: str = "vllm"
    """"vllm" (a second in-process engine: on a GPU it takes judge_gpu_memory_utilization, so lower
    gpu_memory_utilization to leave room) or "hf" (transformers generate)."""
    judge_dtype: str = "auto"
    judge_max_new_tokens: int = 64
    """The judge's reply is one line ("Extracted answer: ..."); a reasoning judge needs more."""
    judge_max_model_len: int = 4096
    """The judge's context; its prompt may use judge_max_model_len - judge_max_new_tokens tokens."""
    judge_max_response_chars: int = 4000
    """A longer response is cut to its last this-many characters before the judge reads it."""
    judge_gpu_memory_utilization: float = 0.3
    """The judge engine's share of the GPU (vLLM). With two engines on one GPU, gpu_memory_utilization +
    judge_gpu_memory_utilization must be <= 0.95, e.g. 0.45 + 0.45 (checked before either engine starts)."""


PRESET_TASKS: dict[str, list[dict[str, Any]]] = {
    "synthetic-text": [{"synthetic": "arithmetic", "n": 6, "name": "synthetic_text"}],
    "synthetic-mm": [{"synthetic": "expression", "n": 3, "name": "synthetic_expression"},
                     {"synthetic": "counting", "n": 3, "name": "synthetic_counting"},
                     {"synthetic": "geometry", "n": 3, "name": "synthetic_geometry"}],
    "synthetic-unanswerable": [{"synthetic": "arithmetic", "n": 6, "unanswerable_fraction": 0.5,
                                "name": "synthetic_unanswerable_text"},
                               {"synthetic": "counting", "n": 4, "unanswerable_fraction": 0.5,
                                "name": "synthetic_unanswerable_mm"}],
    # Small pictures (8 x 4 merged patches) keep CPU episodes short; real evals keep the env's 672 x 336.
    "synthetic-football": [{"football": ["academy_empty_goal_close"], "seeds": [0, 1], "max_turns": 3,
                            "image_size": [224, 112]}],
    "lmm-r1-mm": [{"benchmark": b} for b in ("mathvista", "mathverse", "mathvision", "mmstar", "olympiadbench")],
    "lmm-r1-text": [{"benchmark": b} for b in ("math500", "gpqa_diamond")],
}
BUILTIN_SUITES: dict[str, dict[str, Any]] = {
    **{name: {"name": name, "config": {"max_new_tokens": 64, "max_model_len": 2048, "max_prompt_len": 1536},
              "tasks": tasks} for name, tasks in PRESET_TASKS.items() if name.startswith("synthetic")},
    "synthetic": {"name": "synthetic", "config": {"max_new_tokens": 64, "max_model_len": 2048, "max_prompt_len": 1536},
                  "tasks": [t for n in ("synthetic-text", "synthetic-mm", "synthetic-unanswerable",
                                        "synthetic-football") for t in PRESET_TASKS[n]]},
    # LMM-R1's protocol (ForJadeForest/lmm-r1-eval): greedy, R1 system prompt, 4096 new tokens (8192 for text).
    "lmm-r1-mm": {"name": "lmm-r1-mm", "config": {"max_new_tokens": 4096, "max_model_len": 8192, "prompt": "r1"},
                  "tasks": PRESET_TASKS["lmm-r1-mm"]},
    "lmm-r1-text": {"name": "lmm-r1-text", "config": {"max_new_tokens": 8192, "max_model_len": 10240, "prompt": "r1"},
                    "tasks": PRESET_TASKS["lmm-r1-text"]},
    "lmm-r1": {"name": "lmm-r1", "config": {"max_new_tokens": 4096, "max_model_len": 8192, "prompt": "r1"},
               "tasks": PRESET_TASKS["lmm-r1-mm"] + PRESET_TASKS["lmm-r1-text"]},
    # NGRPO's pass@k protocol: 256 samples, temperature 0.6, top_p 0.95, 4096 new tokens.
    "ngrpo-passk": {"name": "ngrpo-passk", "config": {"n_samples": 256, "temperature": 0.6, "top_p": 0.95,
                                                      "max_new_tokens": 4096, "max_model_len": 8192},
                    "tasks": [{"benchmark": "math500"}]},
}

TASK_KEYS = {
    "benchmark": {"benchmark", "path", "split", "limit", "prompt", "name", "extractor"},
    "synthetic": {"synthetic", "n", "seed", "difficulty", "unanswerable_fraction", "prompt", "name", "image_size",
                  "extractor"},
    "football": {"football", "seeds", "max_turns", "name", "image_size"},
}


@dataclass
class Suite:
    name: str
    tasks: list[dict[str, Any]]
    config: EvalConfig


def load_suite(spec: str, overrides: list[str] = (), base_config: dict[str, Any] | None = None) -> Suite:
    """A built-in suite name or a YAML path. Settings, later wins: EvalConfig defaults < the suite's `config`
    < `base_config` (a run directory's model settings: dtype, backend, context length, prompt length) < the
    command line's key=value."""
    if spec in BUILTIN_SUITES:
        data = BUILTIN_SUITES[spec]
    else:
        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(f"suite {spec!r} is neither a built-in suite ({', '.join(sorted(BUILTIN_SUITES))}) "
                                    "nor a YAML file")
        import yaml

        data = yaml.safe_load(path.read_text()) or {}
        data.setdefault("name", path.stem)
    unknown = set(data) - {"name", "config", "tasks"}
    if unknown:
        raise ConfigError(f"suite {spec!r}: unknown keys {sorted(unknown)}; a suite has name, config, tasks")
    tasks = [dict(t) for t in data.get("tasks") or []]
    if not tasks:
        raise ConfigError(f"suite {spec!r} has no tasks")
    for i, task in enumerate(tasks):
        kind = next((k for k in TASK_KEYS if k in task), None)
        if kind is None:
            raise ConfigError(f"suite {spec!r}: tasks[{i}] names none of {sorted(TASK_KEYS)}")
        extra = set(task) - TASK_KEYS[kind]
        if extra:
            raise ConfigError(f"suite {spec!r}: tasks[{i}] ({kind}) has unknown keys {sorted(extra)}; "
                              f"valid: {sorted(TASK_KEYS[kind])}")
        if task.get("prompt", "r1") not in PROMPT_TEMPLATES:
            raise ConfigError(f"suite {spec!r}: tasks[{i}].prompt {task['prompt']!r} is not one of {PROMPT_TEMPLATES}")
        if task.get("extractor", "rule") not in EXTRACTORS:
            raise ConfigError(f"suite {spec!r}: tasks[{i}].extractor {task['extractor']!r} is not one of {EXTRACTORS}")
        task["kind"] = kind
    merged = {**(data.get("config") or {}), **(base_config or {})}
    config = from_dict(EvalConfig, apply_overrides(merged, list(overrides)))
    if config.prompt not in PROMPT_TEMPLATES:
        raise ConfigError(f"prompt={config.prompt!r} is not one of {PROMPT_TEMPLATES}")
    for name in ("n_samples", "hf_batch_sequences"):
        if getattr(config, name) < 1:
            raise ConfigError(f"{name} must be >= 1, got {getattr(config, name)}")
    if config.temperature == 0 and config.n_samples > 1:
        raise ConfigError(f"n_samples={config.n_samples} with temperature=0: greedy decoding gives identical samples; "
                          "set temperature > 0 (NGRPO: temperature=0.6 top_p=0.95)")
    if config.extractor not in EXTRACTORS:
        raise ConfigError(f"extractor={config.extractor!r} is not one of {EXTRACTORS}")
    if any(task_extractor(t, config) == "judge" for t in tasks):
        if not config.judge_model:
            raise ConfigError("extractor=judge needs judge_model=DIR|tiny|self (a local checkpoint; nothing downloads)")
        if config.judge_backend not in JUDGE_BACKENDS:
            raise ConfigError(f"judge_backend={config.judge_backend!r} is not one of {JUDGE_BACKENDS}")
        if config.judge_max_new_tokens >= config.judge_max_model_len:
            raise ConfigError(f"judge_max_new_tokens={config.judge_max_new_tokens} leaves no room for the judge's "
                              f"prompt in judge_max_model_len={config.judge_max_model_len}")
    return Suite(str(data.get("name", spec)), tasks, config)


def task_extractor(task: dict[str, Any], config: EvalConfig) -> str:
    """The answer extractor of a question-answering task: its own `extractor`, else the config's (football
    tasks have none: "rule")."""
    if task["kind"] == "football":
        return "rule"
    return str(task.get("extractor") or config.extractor)


def task_name(task: dict[str, Any]) -> str:
    if task.get("name"):
        return str(task["name"])
    if task["kind"] == "benchmark":
        return str(task["benchmark"])
    if task["kind"] == "synthetic":
        return f"synthetic_{task['synthetic']}"
    return "football"


def apply_template(record: Record, template: str) -> Record:
    """The record with the prompt template's system turn / instruction (module docstring)."""
    if template == "record":
        return record
    turns = [m for m in record.messages if m["role"] != "system"]
    if template == "cot":
        last = dict(turns[-1])
        content = last["content"]
        if isinstance(content, str):
            last["content"] = content + COT_SUFFIX
        else:
            last["content"] = [*content[:-1], {"type": "text", "text": content[-1]["text"] + COT_SUFFIX}] \
                if content[-1]["type"] == "text" else [*content, {"type": "text", "text": COT_SUFFIX.strip()}]
        turns[-1] = last
    else:
        system = LMM_R1_SYSTEM_PROMPT if template == "r1" else ABSTAIN_SYSTEM_PROMPT
        turns = [{"role": "system", "content": system}, *turns]
    return validate_record({**record.to_dict(), "messages": turns})


def config_dict(config: EvalConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)
