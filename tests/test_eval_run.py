"""The harness end to end on the tiny model (the session's vLLM engine): the built-in synthetic suites (text,
multimodal, unanswerable, football) write results.json, report.md and PNG plots; a sampled run gives a pass@k
curve; eval.compare reads two runs; the CLI takes a stage's run directory (final/ + config.json) as --model."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from eval import compare as compare_cli
from eval import run as run_cli
from eval.suites import BUILTIN_SUITES, load_suite
from lmmr1.config import ConfigError
from lmmr1.rollout import get_rollout_backend

HAS_FOOTBALL = importlib.util.find_spec("gfootball") is not None
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def engine(tiny_vllm, tiny_model_dir):
    from transformers import AutoProcessor

    return get_rollout_backend("vllm")(llm=tiny_vllm), AutoProcessor.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def synthetic_run(engine, tiny_model_dir, tmp_path_factory):
    """The built-in `synthetic` suite (all four synthetic suites), greedy."""
    backend, processor = engine
    suite = load_suite("synthetic", ["max_new_tokens=24"])
    if not HAS_FOOTBALL:
        suite.tasks = [t for t in suite.tasks if t["kind"] != "football"]
    out = tmp_path_factory.mktemp("synthetic")
    return out, run_cli.run_suite(suite, tiny_model_dir, out, backend, processor)


def test_synthetic_suites_write_json_markdown_and_pngs(synthetic_run):
    out, results = synthetic_run
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(results))
    names = [t["name"] for t in on_disk["tasks"]]
    assert names[:6] == ["synthetic_text", "synthetic_expression", "synthetic_counting", "synthetic_geometry",
                         "synthetic_unanswerable_text", "synthetic_unanswerable_mm"]
    assert on_disk["config"]["max_new_tokens"] == 24 and on_disk["config"]["temperature"] == 0.0
    for task in on_disk["tasks"]:
        if task["kind"] != "qa":
            continue
        m = task["metrics"]
        assert task["scored"] == task["rows"] > 0 and task["excluded_total"] == 0
        assert set(m) >= {"accuracy", "pass_at_k", "pass_at_k_auc", "ucpo_paq", "ucpo_f1", "ucpo_abstention_rate"}
        assert m["pass_at_k"] == {"1": m["accuracy"]} and m["pass_at_k_auc"] == m["accuracy"]  # greedy: n = 1
        assert sum(m["outcomes"].values()) == task["scored"]
        assert len((out / "samples" / f"{task['name']}.jsonl").read_text().splitlines()) == task["scored"]
    unanswerable = next(t for t in on_disk["tasks"] if t["name"] == "synthetic_unanswerable_text")
    assert "abstention_rate_unanswerable" in unanswerable["metrics"]
    # The multimodal records really carried images (the generator wrote them beside the records).
    assert list((out / "data" / "synthetic_counting" / "images").glob("*.png"))

    md = (out / "report.md").read_text()
    assert "| synthetic_geometry | record | 3 | 0 |" in md and "![plots/scores.png](plots/scores.png)" in md
    for plot in on_disk["plots"]:
        assert (out / plot).read_bytes().startswith(PNG_MAGIC)
    assert "plots/scores.png" in on_disk["plots"]

    if HAS_FOOTBALL:
        football = on_disk["tasks"][-1]
        assert football["kind"] == "football" and "plots/football.png" in on_disk["plots"]
        episodes = football["scenarios"]["academy_empty_goal_close"]["episodes_detail"]
        assert [e["seed"] for e in episodes] == [0, 1] and all(1 <= e["turns"] <= 3 for e in episodes)
        mean = sum(e["total_reward"] for e in episodes) / 2
        assert football["metrics"]["mean_reward"] == pytest.approx(mean)
        assert "| academy_empty_goal_close | 2 |" in md


def test_sampled_run_pass_at_k_and_compare(engine, tiny_model_dir, synthetic_run, tmp_path):
    backend, processor = engine
    suite = load_suite("synthetic-text", ["n_samples=4", "temperature=1.0", "max_new_tokens=16"])
    results = run_cli.run_suite(suite, tiny_model_dir, tmp_path / "sampled", backend, processor)
    m = results["tasks"][0]["metrics"]
    assert list(m["pass_at_k"]) == ["1", "2", "4"]
    assert m["pass_at_k"]["1"] <= m["pass_at_k"]["2"] <= m["pass_at_k"]["4"]
    assert (tmp_path / "sampled" / "plots" / "pass_at_k.png").read_bytes().startswith(PNG_MAGIC)
    samples = json.loads((tmp_path / "sampled" / "samples" / "synthetic_text.jsonl").read_text().splitlines()[0])
    assert len(samples["responses"]) == 4

    before, _ = synthetic_run
    out = compare_cli.compare([before, tmp_path / "sampled"], tmp_path / "cmp", labels=["before", "after"])
    table = json.loads((out / "comparison.json").read_text())
    row = next(r for r in table["rows"] if r["task"] == "synthetic_text" and r["metric"] == "accuracy")
    before_acc = next(t for t in json.loads((before / "results.json").read_text())["tasks"]
                      if t["name"] == "synthetic_text")["metrics"]["accuracy"]
    assert row["values"] == {"before": before_acc, "after": m["accuracy"]}
    assert row["delta"] == pytest.approx(m["accuracy"] - before_acc)
    geometry = next(r for r in table["rows"] if r["task"] == "synthetic_geometry" and r["metric"] == "accuracy")
    assert geometry["values"]["after"] is None and geometry["delta"] is None  # only in the first run
    assert "| synthetic_text | acc % |" in (out / "comparison.md").read_text()
    for plot in ("scores.png", "pass_at_k.png"):
        assert (out / "plots" / plot).read_bytes().startswith(PNG_MAGIC)
    with pytest.raises(ValueError, match="two or more"):
        compare_cli.compare([before])


def test_cli_takes_a_run_directory(engine, tiny_model_dir, tmp_path, monkeypatch):
    # A stage's run directory: final/ (the HF checkpoint) and the resolved config.json; its rollout settings
    # and eval suites are used, so no setting is repeated on the command line.
    run_dir = tmp_path / "runs" / "fre"
    run_dir.mkdir(parents=True)
    (run_dir / "final").symlink_to(tiny_model_dir, target_is_directory=True)
    (run_dir / "config.json").write_text(json.dumps({
        "model": {"path": "tiny", "dtype": "float32"}, "rollout": {"backend": "vllm", "max_model_len": 1024},
        "data": {"max_prompt_len": 900}, "eval": {"suites": ["synthetic-text"]}}))
    model_dir, base, suites = run_cli.resolve_model(str(run_dir))
    assert model_dir == run_dir / "final" and suites == ["synthetic-text"]
    assert base == {"dtype": "float32", "backend": "vllm", "max_model_len": 1024, "max_prompt_len": 900}

    # A stage config YAML names the run directory (train.run_dir, relative to the working directory).
    stage_yaml = tmp_path / "fre.yaml"
    stage_yaml.write_text("train:\n  run_dir: runs/fre\nmodel:\n  path: tiny\n")
    monkeypatch.chdir(tmp_path)
    assert run_cli.resolve_model(str(stage_yaml))[0] == Path("runs/fre/final")
    stage_yaml.write_text("train:\n  run_dir: runs/not_trained\n")
    with pytest.raises(FileNotFoundError, match="no final/ checkpoint yet"):
        run_cli.resolve_model(str(stage_yaml))

    seen = {}

    def shared_engine(model_dir, cfg):  # the session's engine instead of a second vLLM
        seen["model_dir"], seen["cfg"] = model_dir, cfg
        return engine

    monkeypatch.setattr(run_cli, "build_backend", shared_engine)
    assert run_cli.main(["--model", str(run_dir), "--out", str(tmp_path / "out"), "max_new_tokens=8"]) == 0
    assert seen["model_dir"] == run_dir / "final" and seen["cfg"].max_model_len == 1024
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["suite"] == "synthetic-text" and results["config"]["max_prompt_len"] == 900
    assert results["config"]["max_new_tokens"] == 8


def test_model_and_suite_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        run_cli.resolve_model(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="neither a built-in suite"):
        load_suite(str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match="identical samples"):
        load_suite("synthetic-text", ["n_samples=4"])
    with pytest.raises(ConfigError, match="unknown config key"):
        load_suite("synthetic-text", ["n_sample=4"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks:\n  - benchmark: mathvista\n    pth: /x\n")
    with pytest.raises(ConfigError, match="unknown keys \\['pth'\\]"):
        load_suite(str(bad))
    good = tmp_path / "mine.yaml"
    good.write_text("config:\n  n_samples: 8\n  temperature: 0.6\ntasks:\n  - benchmark: math500\n    limit: 10\n")
    suite = load_suite(str(good), ["top_p=0.95"])
    assert suite.name == "mine" and suite.config.n_samples == 8 and suite.config.top_p == 0.95
    assert {"synthetic", "synthetic-text", "synthetic-mm", "synthetic-unanswerable", "synthetic-football",
            "lmm-r1", "ngrpo-passk"} <= set(BUILTIN_SUITES)


def test_hf_backend_runs_a_suite(tiny_model_dir, tmp_path):
    # The transformers-generate path (no vLLM): build_backend loads the checkpoint and its processor itself.
    suite_file = tmp_path / "small.yaml"
    suite_file.write_text("config:\n  backend: hf\n  dtype: float32\n  max_new_tokens: 8\n"
                          "tasks:\n  - synthetic: counting\n    n: 2\n    prompt: cot\n")
    suite = load_suite(str(suite_file), ["hf_batch_sequences=1"])  # one prompt per generate call
    backend, processor = run_cli.build_backend(tiny_model_dir, suite.config)
    assert backend.name == "hf" and backend.max_batch_sequences == 1
    with pytest.raises(ConfigError, match="hf_batch_sequences must be >= 1, got 0"):
        load_suite(str(suite_file), ["hf_batch_sequences=0"])
    results = run_cli.run_suite(suite, tiny_model_dir, tmp_path / "out", backend, processor)
    task = results["tasks"][0]
    assert task["name"] == "synthetic_counting" and task["prompt"] == "cot" and task["scored"] == 2
    assert (tmp_path / "out" / "plots" / "scores.png").read_bytes().startswith(PNG_MAGIC)


def test_tiny_model_as_judge_end_to_end(engine, tiny_model_dir, tmp_path):
    # The tiny model answers (vLLM) and judges (its own HF model, built by run_suite from judge_model=tiny).
    # Its replies are garbage, so nearly every answer falls back to the rules: what is checked is the plumbing
    # (every non-abstaining sample reaches the judge once, each sample is counted once, fallbacks are graded
    # exactly as the rules grade them) and the report.
    backend, processor = engine
    suite = load_suite("synthetic-text", ["max_new_tokens=12", "extractor=judge", "judge_model=tiny",
                                          "judge_backend=hf", "judge_dtype=float32", "judge_max_new_tokens=6"])
    results = run_cli.run_suite(suite, tiny_model_dir, tmp_path / "judged", backend, processor)
    task = results["tasks"][0]
    e = task["extraction"]
    assert e["extractor"] == "judge" and Path(e["judge_model"]) == Path(tiny_model_dir)
    assert e["judge"] + e["fallback"] + e["abstained"] == task["scored"] == 6
    assert sum(e["fallback_reasons"].values()) == e["fallback"]
    lines = [json.loads(line) for line in (tmp_path / "judged" / "samples" / "synthetic_text.jsonl").read_text()
             .splitlines()]
    asked = [o for line in lines for o in line["judge_outputs"] if o is not None]
    assert len(asked) == e["judge"] + e["fallback"]  # one judge reply per non-abstaining sample
    assert all(isinstance(o, str) and o for o in asked)  # the tiny model's (garbage) text, kept for inspection

    # The same responses graded by the rules alone: every fallen-back or abstaining sample has the rule outcome.
    from eval.run import grade
    from lmmr1.data.records import validate_record
    from lmmr1.rewards import RewardConfig, get_reward

    reward = get_reward(suite.config.reward, RewardConfig())
    records = [validate_record(json.loads(r)) for r in (tmp_path / "judged" / "data" / "synthetic_text" /
                                                        "records.jsonl").read_text().splitlines()]
    for line, record in zip(lines, records):
        for text, outcome, method in zip(line["responses"], line["outcomes"], line["extraction"]):
            if method != "judge":
                assert grade(text, record, reward).outcome == outcome

    md = (tmp_path / "judged" / "report.md").read_text()
    assert (f"- synthetic_text: judge `{e['judge_model']}` extracted {e['judge']} answer(s); {e['fallback']} fell "
            "back to the rules") in md


def test_self_judge_shares_the_vllm_engine(engine, tiny_model_dir, tmp_path):
    # judge_model=self: the evaluated model's own vLLM engine extracts the answers (no second engine).
    backend, processor = engine
    suite = load_suite("synthetic-text", ["max_new_tokens=12", "extractor=judge", "judge_model=self",
                                          "judge_max_new_tokens=6"])
    results = run_cli.run_suite(suite, tiny_model_dir, tmp_path / "self", backend, processor)
    e = results["tasks"][0]["extraction"]
    assert e["judge_model"] == f"self ({tiny_model_dir})"
    assert e["judge"] + e["fallback"] + e["abstained"] == 6 and sum(e["fallback_reasons"].values()) == e["fallback"]
    lines = (tmp_path / "self" / "samples" / "synthetic_text.jsonl").read_text().splitlines()
    assert sum(o is not None for line in lines for o in json.loads(line)["judge_outputs"]) == 6 - e["abstained"]
