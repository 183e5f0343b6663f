"""LLM-judge answer extraction: a judge model reads a free-form response and copies out its final answer,
which is then graded by the same rules as a rule-extracted one (math-verify, or the option letter).

This is the protocol of MathVista and MathVerse (and of LMM-R1's official eval, which served
Qwen2.5-14B-Instruct as the judge): the judge only *extracts*; matching against the gold stays rule-based
here, so a judge cannot mark a wrong answer right by itself. Chosen with `extractor=judge` and
`judge_model=DIR|tiny|self` (eval/suites.py); the judge runs through lmmr1's rollout backends (vLLM or
HF generate), greedy, on local weights only.

One sample, step by step (`grade_sample`):
  1. a response that abstains (lmmr1.rewards' abstention rule) is graded by the rules ("abstained");
     the judge is not asked.
  2. the judge gets `JUDGE_SYSTEM_PROMPT` and `JUDGE_USER_TEMPLATE` (the question's text, without images,
     and the response; a response longer than `max_response_chars` keeps its end, where the answer is).
  3. `parse_judge_output` reads the judge's reply: the text after the last "Extracted answer:" on that
     line, unwrapped (`**`, quotes, `$...$`, `\\boxed{}`, a final "."). Unusable replies, with the reason:
        no_marker        the reply has no "Extracted answer:"
        no_answer        the answer is empty or says there is none ("[none]", "none", "n/a", ...)
        too_long         the answer is longer than MAX_ANSWER_CHARS (the judge rambled)
        prompt_too_long  the judge's prompt did not fit its context (the judge was not run)
  4. a usable answer X is graded as the response "<answer>\\boxed{X}</answer>". Two more reasons to fall
     back: not_an_option (multiple choice: X is neither a letter nor an option's text) and ungradable
     (free-form: the grader finds no answer in X, outcome "invalid").
  5. an unusable reply falls back to the rule grade of the whole response ("fallback").
Counts of judge / fallback / abstained samples, and fallback reasons, go into results.json and report.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from eval.benchmarks import extract_choice, grade_choice
from lmmr1.data.records import Record
from lmmr1.rewards.base import RewardResult
from lmmr1.rewards.rules import boxed_contents, clean_response, detect_abstention
from lmmr1.rollout import PromptTooLongError, SamplingConfig, encode_prompt

MAX_ANSWER_CHARS = 200
NONE_ANSWERS = {"[none]", "none", "n/a", "na", "no answer", "null", "nothing", "[no answer]"}
FALLBACK_REASONS = ("no_marker", "no_answer", "too_long", "prompt_too_long", "not_an_option", "ungradable")

JUDGE_SYSTEM_PROMPT = ("You read another model's response to a question and copy out the final answer it "
                       "gives. You never solve the question yourself.")

JUDGE_USER_TEMPLATE = """Copy out the final answer that the model response commits to.
- Write the answer as the response states it: a number, an expression, a word or an option letter. Do not \
solve the question, correct the answer or add units.
- When the question lists lettered options, write the letter of the option the response chose.
- When the response gives no final answer, or says it cannot answer, write [none].
Reply with a single line: "Extracted answer: <answer>".

Example 1
Question: What is the perimeter of a square with side 3?
Model response: Each side is 3 and a square has four sides, so the perimeter is 12.
Extracted answer: 12

Example 2
Question: Which shape has the most sides?
Choices:
(A) triangle
(B) hexagon
(C) square
Model response: A hexagon has six sides, more than the other two.
Extracted answer: B

Example 3
Question: Solve 2x = 5.
Model response: <think>Divide both sides by 2.</think><answer>$\\frac{{5}}{{2}}$</answer>
Extracted answer: \\frac{{5}}{{2}}

Example 4
Question: How many birds are in the picture?
Model response: The picture is too dark for me to count them.
Extracted answer: [none]

Now this one
Question: {question}
Model response: {response}"""

_MARKER = re.compile(r"extracted\s+answer\s*[:：]", re.IGNORECASE)


@dataclass(frozen=True)
class JudgeParse:
    """What one judge reply yielded: the answer (None when unusable), why, and the raw reply."""

    answer: str | None
    reason: str
    """"ok" or one of FALLBACK_REASONS."""
    raw: str = ""


def _unwrap(answer: str) -> str:
    """Strip what judges put around an answer: whitespace, **bold**, quotes, $...$, \\(...\\), \\boxed{},
    a final period."""
    previous = None
    while answer != previous:
        previous = answer
        answer = answer.strip()
        if len(answer) >= 4 and answer.startswith("**") and answer.endswith("**"):
            answer = answer[2:-2]
        elif len(answer) >= 2 and answer[0] == answer[-1] and answer[0] in "\"'`":
            answer = answer[1:-1]
        elif len(answer) >= 2 and answer.startswith("$") and answer.endswith("$"):
            answer = answer.strip("$")
        elif answer.startswith("\\(") and answer.endswith("\\)"):
            answer = answer[2:-2]
        elif answer.startswith("\\boxed{") and answer.endswith("}") and len(boxed_contents(answer)) == 1 \
                and f"\\boxed{{{boxed_contents(answer)[0]}}}" == answer:
            answer = boxed_contents(answer)[0]
        elif answer.endswith("."):
            answer = answer[:-1]
    return answer


def parse_judge_output(text: str) -> JudgeParse:
    """The answer in a judge's reply (module docstring, step 3). A reasoning judge's <think> block is
    skipped: only the text after the last </think> is read."""
    raw = text
    text = clean_response(text)
    if "</think>" in text:
        text = text[text.rfind("</think>") + len("</think>"):]
    markers = list(_MARKER.finditer(text))
    if not markers:
        return JudgeParse(None, "no_marker", raw)
    answer = _unwrap(text[markers[-1].end():].split("\n", 1)[0])
    if not answer or answer.lower() in NONE_ANSWERS:
        return JudgeParse(None, "no_answer", raw)
    if len(answer) > MAX_ANSWER_CHARS:
        return JudgeParse(None, "too_long", raw)
    return JudgeParse(answer, "ok", raw)


def question_text(record: Record) -> str:
    """The text of the record's last user turn (image placeholders dropped): what the judge reads as the
    question."""
    user = [m for m in record.messages if m["role"] == "user"][-1]["content"]
    if isinstance(user, str):
        return user.strip()
    return "\n".join(part["text"] for part in user if part.get("type") == "text").strip()


def judge_messages(question: str, response: str, max_response_chars: int) -> list[dict[str, Any]]:
    """The judge's chat: system prompt, then the template filled in (a long response keeps its end)."""
    if len(response) > max_response_chars:
        response = "..." + response[-max_response_chars:]
    return [{"role": "system", "content": JUDGE_SYSTEM_PROMPT},
            {"role": "user", "content": JUDGE_USER_TEMPLATE.format(question=question, response=response)}]


@dataclass
class JudgeExtractor:
    """A judge model behind a rollout backend. `extract` asks it, greedy, for each (question, response)."""

    backend: Any
    """A lmmr1 rollout backend (vllm or hf)."""
    processor: Any
    """The judge's processor (or a TextProcessor around a text-only model's tokenizer)."""
    name: str = ""
    """What the judge is (its checkpoint), for the report."""
    max_new_tokens: int = 64
    max_prompt_len: int = 3072
    max_response_chars: int = 4000
    batch_size: int = 64
    calls: int = 0

    def extract(self, questions: list[str], responses: list[str], seed: int = 0) -> list[JudgeParse]:
        """One JudgeParse per (question, response)."""
        parses: list[JudgeParse | None] = [None] * len(responses)
        prompts, where = [], []
        for i, (question, response) in enumerate(zip(questions, responses)):
            try:
                prompts.append(encode_prompt(self.processor, judge_messages(question, response,
                                                                            self.max_response_chars),
                                             [], self.max_prompt_len))
                where.append(i)
            except PromptTooLongError:
                parses[i] = JudgeParse(None, "prompt_too_long")
        sampling = SamplingConfig(max_new_tokens=self.max_new_tokens, temperature=0.0, top_p=1.0)
        for start in range(0, len(prompts), self.batch_size):
            outputs = self.backend.generate(prompts[start:start + self.batch_size], 1, sampling, seed=seed + start)
            self.calls += len(outputs)
            for i, samples in zip(where[start:start + self.batch_size], outputs):
                parses[i] = parse_judge_output(samples[0].text)
        return parses  # type: ignore[return-value]


def grade_with_answer(answer: str, record: Record, reward) -> tuple[RewardResult, str]:
    """Grade a judge-extracted answer as "<answer>\\boxed{answer}</answer>" (multiple choice with
    grade_choice, free-form with `reward(text, record)`): (result, "ok"), or (result,
    "not_an_option" / "ungradable") when the answer cannot be graded and the rules must be used instead."""
    composed = f"<answer>\\boxed{{{answer}}}</answer>"
    if record.task == "multiple_choice":
        if extract_choice(composed, record.meta.get("choices")) is None and not detect_abstention(composed).abstained:
            return RewardResult(0.0, {}, "invalid"), "not_an_option"
        return grade_choice(composed, record), "ok"
    result = reward(composed, record)
    return result, ("ungradable" if result.outcome == "invalid" else "ok")


def grade_sample(response: str, record: Record, parse: JudgeParse | None, rule_grade) -> tuple[RewardResult, str, str]:
    """(grade, method, reason) of one sample under judge extraction (module docstring). `parse` is None for
    an abstaining response (the judge was not asked); `rule_grade(response, record)` is the rule grader.
    method: "judge" | "fallback" | "abstained"; reason: "ok" or a FALLBACK_REASONS entry."""
    if parse is None:
        return rule_grade(response, record), "abstained", "ok"
    if parse.answer is not None:
        result, reason = grade_with_answer(parse.answer, record, rule_grade)
        if reason == "ok":
            return result, "judge", "ok"
    else:
        reason = parse.reason
    return rule_grade(response, record), "fallback", reason


class TextProcessor:
    """A text-only judge's tokenizer in the shape `encode_prompt` and the HF backend read (`.tokenizer`,
    `apply_chat_template`)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def apply_chat_template(self, messages, **kwargs):
        return self.tokenizer.apply_chat_template(messages, **kwargs)
