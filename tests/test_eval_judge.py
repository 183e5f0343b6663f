"""LLM-judge answer extraction (eval.judge): the parsing of judge replies, pinned on hand-written strings; the
grading paths (judge answer used, fallen back to the rules for each reason, abstentions not sent to the judge)
with a scripted judge, counted exactly in results.json; the config checks. The tiny model as a real judge,
end to end, is in tests/test_eval_run.py."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from eval.judge import (JUDGE_USER_TEMPLATE, JudgeExtractor, JudgeParse, grade_sample, grade_with_answer,
                        judge_messages, parse_judge_output, question_text)
from eval.run import build_judge, evaluate_qa, grade
from eval.suites import EvalConfig, load_suite
from lmmr1.config import ConfigError
from lmmr1.data.records import validate_record
from lmmr1.rewards import RewardConfig, get_reward
from lmmr1.rewards.base import RewardResult
from lmmr1.rollout import Sample


@pytest.mark.parametrize("reply, answer, reason", [
    ("Extracted answer: 12", "12", "ok"),
    ("Extracted answer: B", "B", "ok"),
    ("extracted ANSWER:   (C) square  ", "(C) square", "ok"),  # case and spaces; the option stays as written
    ("The response says 4.\nExtracted answer: 4\nThat is all.", "4", "ok"),  # only the marker's line
    ("Extracted answer: 3\nExtracted answer: 5", "5", "ok"),  # the last marker wins
    ("Extracted answer: **$\\frac{1}{2}$**.", "\\frac{1}{2}", "ok"),  # bold, dollars, final period stripped
    ("Extracted answer: \\boxed{x^2+1}", "x^2+1", "ok"),
    ("Extracted answer: \\boxed{1}+\\boxed{2}", "\\boxed{1}+\\boxed{2}", "ok"),  # not one box: kept whole
    ("Extracted answer: \"yes\"", "yes", "ok"),
    ("Extracted answer: 3.5.", "3.5", "ok"),
    ("Extracted answer：7", "7", "ok"),  # full-width colon
    ("<think>Maybe Extracted answer: 1</think>Extracted answer: 2<|im_end|>", "2", "ok"),  # after </think> only
    ("Extracted answer: [none]", None, "no_answer"),
    ("Extracted answer: N/A", None, "no_answer"),
    ("Extracted answer:   \nmore text", None, "no_answer"),
    ("Extracted answer: ...", None, "no_answer"),
    ("The answer is 12.", None, "no_marker"),
    ("", None, "no_marker"),
    ("<think>Extracted answer: 1</think>I am not sure.", None, "no_marker"),
    ("Extracted answer: " + "9" * 201, None, "too_long"),
    ("Extracted answer: " + "9" * 200, "9" * 200, "ok"),
])
def test_parse_judge_output(reply, answer, reason):
    assert parse_judge_output(reply) == JudgeParse(answer, reason, reply)


def test_judge_prompt_holds_the_question_and_the_end_of_a_long_response():
    messages = judge_messages("What is 1+1?", "a" * 50 + "so the answer is 2", max_response_chars=20)
    user = messages[1]["content"]
    assert messages[0]["role"] == "system" and user.startswith(JUDGE_USER_TEMPLATE.split("{", 1)[0][:40])
    assert user.endswith("Question: What is 1+1?\nModel response: ...aaso the answer is 2")
    assert "Extracted answer: \\frac{5}{2}" in user  # the template's literal braces survive .format
    record = validate_record({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": [
        {"type": "image"}, {"type": "text", "text": "How many?"}]}], "images": ["a.png"], "answer": "3"})
    assert question_text(record) == "How many?"


def test_grade_with_answer_and_fallbacks():
    reward = get_reward("math_uncertainty", RewardConfig())
    rule = lambda t, r: grade(t, r, reward)  # noqa: E731
    math = validate_record({"messages": [{"role": "user", "content": "1+1?"}], "answer": "2"})
    choice = validate_record({"messages": [{"role": "user", "content": "Q?"}], "answer": "B",
                              "task": "multiple_choice", "meta": {"choices": ["circle", "square"]}})
    assert grade_with_answer("2", math, reward)[0].outcome == "correct"
    assert grade_with_answer("x = 2", math, reward)[0].outcome == "correct"
    assert grade_with_answer("3", math, reward)[0].outcome == "wrong"
    assert grade_with_answer("B", choice, reward) == (RewardResult(1.0, {"choice_accuracy": 1.0}, "correct"), "ok")
    assert grade_with_answer("square", choice, reward)[0].outcome == "correct"  # the option's text
    assert grade_with_answer("A", choice, reward)[0].outcome == "wrong"
    assert grade_with_answer("the round one", choice, reward)[1] == "not_an_option"
    invalid = lambda t, r: RewardResult(0.0, {}, "invalid")  # noqa: E731  a grader that finds no answer
    assert grade_with_answer("2", math, invalid)[1] == "ungradable"

    # The judge's answer replaces the rule's: "\\boxed{5}" is wrong by the rules, right by the judge's "2".
    assert grade_sample("\\boxed{5}", math, JudgeParse("2", "ok"), rule)[1:] == ("judge", "ok")
    assert grade_sample("\\boxed{5}", math, JudgeParse("2", "ok"), rule)[0].outcome == "correct"
    # Unusable replies fall back to the rules on the whole response, with the reason.
    result, method, reason = grade_sample("\\boxed{2}", math, JudgeParse(None, "no_marker"), rule)
    assert (result.outcome, method, reason) == ("correct", "fallback", "no_marker")
    result, method, reason = grade_sample("\\boxed{B}", choice, JudgeParse("the round one", "ok"), rule)
    assert (result.outcome, method, reason) == ("correct", "fallback", "not_an_option")
    result, method, reason = grade_sample("I don't know.", math, None, rule)  # abstained: judge not asked
    assert (result.outcome, method, reason) == ("uncertain", "abstained", "ok")


class ScriptedBackend:
    """TEST DOUBLE for a model (the evaluated one or the judge): replies to each prompt with the reply whose
    key occurs in the prompt's text (the last key found wins, so a judge prompt is keyed by its question)."""

    name = "scripted"

    def __init__(self, replies: dict[str, str], default: str = "no idea"):
        self.replies = replies
        self.default = default
        self.prompts = []

    def generate(self, prompts, n, sampling, seed=None):
        self.prompts.extend(prompts)
        out = []
        for i, p in enumerate(prompts):
            hits = [r for key, r in self.replies.items() if key in p.text]
            out.append([Sample(prompt_index=i, response_ids=[], logprobs=[], text=(hits[-1] if hits else self.default)
                               + "<|im_end|>") for _ in range(n)])
        return out


@pytest.fixture(scope="module")
def processor(tiny_model_dir):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_model_dir)


def test_judge_extraction_counts_in_results(tmp_path, processor):
    reward = get_reward("math_uncertainty", RewardConfig())
    (tmp_path / "m500").mkdir()
    rows = [("Compute $1+1$.", "2", "Algebra"), ("Compute $2+0$.", "2", "Algebra"), ("Compute $1+0$.", "1", None),
            ("Compute $0+0$.", "0", "Geometry"), ("Compute $3+4$.", "7", "Geometry")]
    (tmp_path / "m500" / "test.jsonl").write_text("".join(
        json.dumps({"problem": q, "answer": a, "subject": s, "level": 1, "unique_id": q}) + "\n" for q, a, s in rows))
    model = ScriptedBackend({"1+1": "\\boxed{5}", "2+0": "\\boxed{2}", "1+0": "\\boxed{1}", "0+0": "I don't know.",
                             "3+4": "\\boxed{7}"})
    judge_backend = ScriptedBackend({"1+1": "Extracted answer: 2",         # used: right although the box is 5
                                     "2+0": "the answer is 2",             # no_marker -> rules: right
                                     "1+0": "Extracted answer: [none]",    # no_answer -> rules: right
                                     "3+4": "Extracted answer: " + "7" * 300})  # too_long -> rules: right
    judge = JudgeExtractor(judge_backend, processor, name="scripted")
    task = {"kind": "benchmark", "benchmark": "math500", "path": str(tmp_path / "m500"), "extractor": "judge"}
    result = evaluate_qa(task, model, processor, EvalConfig(), reward, tmp_path / "out", judge)
    assert result["extraction"] == {"extractor": "judge", "judge_model": "scripted", "judge": 1, "fallback": 3,
                                    "abstained": 1, "fallback_reasons": {"no_answer": 1, "no_marker": 1, "too_long": 1}}
    assert len(judge_backend.prompts) == 4 and judge.calls == 4  # the abstaining response was not sent
    assert all("Compute $0+0$" not in p.text for p in judge_backend.prompts)
    assert result["metrics"]["accuracy"] == 4 / 5 and result["metrics"]["outcomes"] == {"correct": 4, "uncertain": 1}
    # Subsets: Algebra {1+1 right, 2+0 right}, Geometry {0+0 abstained, 3+4 right}, 1+0 has no subject.
    assert result["subsets"]["subject"] == {"Algebra": {"questions": 2, "accuracy": 1.0},
                                            "Geometry": {"questions": 2, "accuracy": 0.5},
                                            "unknown": {"questions": 1, "accuracy": 1.0}}
    assert result["subset_unknown"] == {"subject": 1, "level": 0}
    first = json.loads((tmp_path / "out" / "samples" / "math500.jsonl").read_text().splitlines()[0])
    assert first["extraction"] == ["judge"] and first["judge_answers"] == ["2"]
    assert first["judge_outputs"] == ["Extracted answer: 2<|im_end|>"] and first["outcomes"] == ["correct"]

    # The same responses graded by the rules: 1+1's "\\boxed{5}" is wrong there.
    rule = evaluate_qa({**task, "extractor": "rule"}, model, processor, EvalConfig(), reward, tmp_path / "rule")
    assert rule["metrics"]["accuracy"] == 3 / 5 and rule["extraction"] == {"extractor": "rule"}


def test_judge_on_multiple_choice(tmp_path, processor):
    reward = get_reward("math_uncertainty", RewardConfig())
    (tmp_path / "gpqa").mkdir()
    pd.DataFrame([{"Question": "Which particle is a lepton?", "Correct Answer": "electron",
                   "Incorrect Answer 1": "proton", "Incorrect Answer 2": "neutron", "Incorrect Answer 3": "pion",
                   "Record ID": "r1", "High-level domain": "Physics", "Subdomain": "Particle physics"},
                  {"Question": "Which gas is inert?", "Correct Answer": "argon", "Incorrect Answer 1": "oxygen",
                   "Incorrect Answer 2": "chlorine", "Incorrect Answer 3": "fluorine", "Record ID": "r2",
                   "High-level domain": "Chemistry", "Subdomain": ""}]).to_csv(tmp_path / "gpqa" / "gpqa_diamond.csv",
                                                                              index=False)
    model = ScriptedBackend({"lepton": "It must be the electron, a lepton.", "inert": "\\boxed{argon}"})
    judge = JudgeExtractor(ScriptedBackend({"lepton": "Extracted answer: electron",  # option text -> its letter
                                            "inert": "Extracted answer: the noble one"}),  # not_an_option
                           processor, name="scripted")
    task = {"kind": "benchmark", "benchmark": "gpqa_diamond", "path": str(tmp_path / "gpqa"), "extractor": "judge"}
    result = evaluate_qa(task, model, processor, EvalConfig(), reward, tmp_path / "out", judge)
    assert result["metrics"]["accuracy"] == 1.0  # the rules alone miss "It must be the electron"
    assert result["extraction"]["judge"] == 1 and result["extraction"]["fallback_reasons"] == {"not_an_option": 1}
    assert result["subset_unknown"] == {"domain": 0, "subdomain": 1}  # a blank Subdomain cell
    rule = evaluate_qa({**task, "extractor": "rule"}, model, processor, EvalConfig(), reward, tmp_path / "rule")
    assert rule["metrics"]["accuracy"] == 0.5


def test_judge_config_checks(tmp_path):
    with pytest.raises(ConfigError, match="needs judge_model"):
        load_suite("synthetic-text", ["extractor=judge"])
    with pytest.raises(ConfigError, match="extractor='llm'"):
        load_suite("synthetic-text", ["extractor=llm"])
    with pytest.raises(ConfigError, match="judge_backend"):
        load_suite("synthetic-text", ["extractor=judge", "judge_model=tiny", "judge_backend=api"])
    with pytest.raises(ConfigError, match="no room"):
        load_suite("synthetic-text", ["extractor=judge", "judge_model=tiny", "judge_max_new_tokens=5000"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks:\n  - benchmark: mathvista\n    extractor: gpt\n")
    with pytest.raises(ConfigError, match="extractor 'gpt'"):
        load_suite(str(bad))
    # Only the MathVista task is judged (the protocol's benchmarks); judge_model is then required.
    mixed = tmp_path / "mixed.yaml"
    mixed.write_text("tasks:\n  - benchmark: mathvista\n    extractor: judge\n  - benchmark: math500\n")
    with pytest.raises(ConfigError, match="needs judge_model"):
        load_suite(str(mixed))
    suite = load_suite(str(mixed), ["judge_model=self"])
    assert suite.config.extractor == "rule" and suite.tasks[0]["extractor"] == "judge"
    # judge_model=self: the evaluated model's engine serves as the judge (no second engine).
    engine, proc = object(), object()
    judge = build_judge(suite.config, Path("ckpt"), engine, proc)
    assert judge.backend is engine and judge.processor is proc
    assert judge.max_prompt_len == suite.config.judge_max_model_len - suite.config.judge_max_new_tokens
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        build_judge(load_suite(str(mixed), [f"judge_model={tmp_path / 'no-judge'}"]).config, Path("ckpt"))


def test_two_vllm_engines_must_fit_one_gpu(monkeypatch):
    import torch

    from eval.run import check_judge_memory

    cfg = load_suite("synthetic-text", ["extractor=judge", "judge_model=/ckpt/judge"]).config
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(ConfigError, match="0.8 \\+ judge_gpu_memory_utilization=0.3 = 1.10"):
        check_judge_memory(cfg)  # the defaults (0.8 + 0.3) do not fit
    cfg.gpu_memory_utilization = 0.5
    check_judge_memory(cfg)
    cfg.gpu_memory_utilization, cfg.judge_model = 0.8, "self"  # one engine: nothing to check
    check_judge_memory(cfg)


def test_text_only_judge_on_the_hf_backend(tiny_model_dir, tmp_path):
    # A judge such as Qwen2.5-14B-Instruct is a text-only causal LM with a tokenizer and no processor. Here: a
    # tiny random Qwen2 causal LM with the tiny model's tokenizer, saved as a checkpoint directory.
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from eval.judge import TextProcessor

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                         eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>")))
    judge_dir = tmp_path / "text-judge"
    model.save_pretrained(judge_dir)
    tokenizer.save_pretrained(judge_dir)
    cfg = load_suite("synthetic-text", ["extractor=judge", f"judge_model={judge_dir}", "judge_backend=hf",
                                        "judge_dtype=float32", "judge_max_new_tokens=4"]).config
    judge = build_judge(cfg, Path("unused"))
    assert isinstance(judge.processor, TextProcessor) and type(judge.backend.model).__name__ == "Qwen2ForCausalLM"
    parses = judge.extract(["What is 1+1?", "Name a prime."], ["\\boxed{2}", "Three."])
    assert len(parses) == 2 and judge.calls == 2
    assert all(p.raw and p.reason in ("ok", "no_marker", "no_answer", "too_long") for p in parses)
