"""Rewards: the registry, the text rules, and the hand-worked reward table (real math-verify in workers).

Reading the table: `lmm_r1` = 0.5 x format_strict + 1.0 x math_accuracy (LMM-R1's reward), so a
well-formatted correct answer is 0.5 + 1.0 = 1.5, a well-formatted wrong one 0.5 + 0 = 0.5, an unformatted
correct one 0 + 1.0 = 1.0. `lmm_r1_uncertainty` replaces math_accuracy by math_uncertainty, which scores an
abstention `uncertainty_reward` (default 0.0) with outcome "uncertain".
"""

from __future__ import annotations

import pytest

from lmmr1.data.records import UNANSWERABLE, Record
from lmmr1.rewards import (
    REWARDS,
    RewardConfig,
    RewardResult,
    detect_abstention,
    extract_response,
    get_reward,
    lenient_format_ok,
    register_reward,
    strict_format_ok,
    summarize,
    wrap_gold,
)
from lmmr1.rewards.rules import boxed_contents, final_answer_slot


def rec(answer: str) -> Record:
    return Record(messages=[{"role": "user", "content": "q"}], answer=answer)


def F(inner: str) -> str:
    """A response in LMM-R1's strict format around `inner`."""
    return f"<think>some reasoning</think><answer>{inner}</answer>"


# -- registry ---------------------------------------------------------------------------------------------


def test_registry_names_and_unknown_name_lists_valid_ones():
    assert {"format_strict", "format_lenient", "math_accuracy", "math_uncertainty", "lmm_r1",
            "lmm_r1_uncertainty"} <= set(REWARDS)
    with pytest.raises(KeyError) as err:
        get_reward("lmm-r1")
    for name in ("lmm_r1", "math_accuracy", "format_strict"):
        assert name in str(err.value)


def test_register_reward_rejects_duplicates_and_new_reward_is_gettable():
    @register_reward("test_constant_reward")
    def build(config):
        return lambda response_text, record: RewardResult(0.25, {"c": 0.25}, "wrong")

    try:
        assert get_reward("test_constant_reward")("x", rec("1")).total == 0.25
        with pytest.raises(ValueError, match="already registered"):
            register_reward("test_constant_reward")(build)
    finally:
        del REWARDS["test_constant_reward"]


def test_reward_result_rejects_unknown_outcome():
    with pytest.raises(ValueError, match="outcome"):
        RewardResult(1.0, {}, "right")


def test_composite_rejects_unknown_component_and_outcome_source():
    with pytest.raises(KeyError, match="valid components"):
        get_reward("lmm_r1", RewardConfig(weights={"format_strict": 0.5, "accuracy": 1.0}))
    with pytest.raises(ValueError, match="outcome_from"):
        get_reward("lmm_r1", RewardConfig(weights={"format_strict": 1.0}))


# -- text rules -------------------------------------------------------------------------------------------


def test_wrap_gold_is_lmm_r1s_rule():
    assert wrap_gold(" 3 ") == "$3$"
    assert wrap_gold("$\\boxed{60}$") == "$\\boxed{60}$"
    assert wrap_gold("\\frac{1}{2}") == "$\\frac{1}{2}$"


def test_extract_response_splits_on_assistant_turn_not_prompt_length():
    # The prompt string holds ONE image pad; the decoded query holds the expanded run (4 pads here).
    prompt = ("<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What is 1+1?<|im_end|>\n"
              "<|im_start|>assistant\n")
    query = prompt.replace("<|image_pad|>", "<|image_pad|>" * 4) + "<think>t</think><answer>2</answer><|im_end|>"
    assert query[len(prompt):] != "<think>t</think><answer>2</answer><|im_end|>"  # the naive cut is wrong
    assert extract_response(query, prompt) == "<think>t</think><answer>2</answer>"
    assert extract_response(query) == "<think>t</think><answer>2</answer>"
    assert extract_response("no assistant turn") is None


def test_extract_response_multi_turn_prompt_uses_the_prompts_marker_count():
    prompt = ("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhello<|im_end|>\n"
              "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n")
    # The response itself quotes the marker: the split must still start after the prompt's 2nd marker.
    response = "I saw <|im_start|>assistant\n in a log"
    assert extract_response(prompt + response, prompt) == "I saw <|im_start|>assistant\n in a log"
    with pytest.raises(ValueError, match="unknown template"):
        extract_response(prompt, template="llama")


@pytest.mark.parametrize(
    "response, strict, lenient",
    [
        ("<think>a</think><answer>b</answer>", True, True),
        ("  <think>a</think><answer>b</answer>\n<|im_end|>", True, True),  # cleaned before the check
        ("<think>a</think>\n<answer>b</answer>", False, True),  # LMM-R1: nothing between the blocks
        ("<think>a</think><answer>b</answer> done", False, False),  # must end at </answer>
        ("Sure! <think>a</think><answer>b</answer>", False, False),  # must start with <think>
        ("<think>a</think><think>c</think><answer>b</answer>", False, False),  # two think blocks
        ("<think>a</think><answer>b</answer><answer>c</answer>", False, False),  # two answer blocks
        ("<answer>b</answer>", False, False),
        ("<think>a</think><answer></answer>", True, False),  # strict allows an empty answer; lenient not
        ("<THINK>a</THINK><answer>b</answer>", False, False),  # tags are case-sensitive
        ("<think>a<answer>x</answer></think><answer>b</answer>", False, False),  # two <answer>
    ],
)
def test_format_rules(response, strict, lenient):
    assert strict_format_ok(response) is strict
    assert lenient_format_ok(response) is lenient


def test_boxed_contents_and_final_answer_slot():
    assert boxed_contents(r"\boxed{\frac{1}{2}} and \fbox{3} and \boxed {x^{2}}") == [r"\frac{1}{2}", "3", "x^{2}"]
    assert boxed_contents(r"\boxed{unclosed") == ["unclosed"]
    assert final_answer_slot("<think>t</think><answer> A </answer>") == " A "
    assert final_answer_slot("<answer>x</answer><answer>last") == "last"
    assert final_answer_slot("plain text") == "plain text"


@pytest.mark.parametrize(
    "response, abstained, committed, hedge",
    [
        (F("I don't know"), True, False, None),
        ("I don\u2019t know.", True, False, None),  # curly apostrophe
        (F(r"\boxed{\text{Cannot be determined}}"), True, False, None),  # the box itself abstains
        (F(r"It cannot be determined exactly, but \boxed{3}"), False, True, None),  # box commits
        (F(r"I'm not sure, but probably $\boxed{3}$"), False, True, "i'm not sure"),  # hedge, committed
        (F("I'm not sure."), False, False, "i'm not sure"),  # a hedge is not an abstention
        ("<think>I don't know yet</think><answer>\\boxed{3}</answer>", False, True, None),  # phrase outside slot
        (F(r"\boxed{}"), False, False, None),
        (F("The unknown side is $5$"), False, False, None),  # "unknown" is not an abstention phrase
        (F("Nothing here is unanswerableness"), False, False, None),  # whole words only
    ],
)
def test_abstention_rule(response, abstained, committed, hedge):
    found = detect_abstention(response)
    assert (found.abstained, found.committed, found.hedge) == (abstained, committed, hedge)


def test_abstention_phrases_are_configurable():
    assert not detect_abstention(F("no idea")).abstained
    assert detect_abstention(F("no idea"), abstention_phrases=("no idea",)).abstained


# -- the reward table (real math-verify) ------------------------------------------------------------------

# (reward name, response, gold, expected total, expected outcome); the comment works out each total.
TABLE = [
    # boxed / unboxed
    ("lmm_r1", F(r"$\boxed{3}$"), "3", 1.5, "correct"),  # 0.5 format + 1 acc
    ("lmm_r1", r"The answer is $\boxed{3}$.", "3", 1.0, "correct"),  # no tags: 0 + 1
    ("lmm_r1", F("The answer is 3"), "3", 0.5, "invalid"),  # plain 3: nothing extracted: 0.5 + 0
    ("lmm_r1", F("The final answer is $3$"), "3", 1.5, "correct"),  # "final answer is $..$" anchor: 0.5 + 1
    ("lmm_r1", F(r"\boxed{4}"), "3", 0.5, "wrong"),  # 0.5 + 0
    ("lmm_r1", F(r"\boxed{-3}"), "-3", 1.5, "correct"),
    ("lmm_r1", F(r"\boxed{3}"), "-3", 0.5, "wrong"),  # sign matters
    ("lmm_r1", F(r"\boxed{60}"), r"$\boxed{60}$", 1.5, "correct"),  # LMM-R1 gold style, already $-wrapped
    # LaTeX fractions
    ("lmm_r1", F(r"\boxed{\frac{1}{2}}"), "0.5", 1.5, "correct"),
    ("lmm_r1", F(r"\boxed{\dfrac{1}{2}}"), r"\frac{1}{2}", 1.5, "correct"),
    ("lmm_r1", F(r"\boxed{2/4}"), r"\frac{1}{2}", 1.5, "correct"),  # symbolic equality
    ("lmm_r1", F(r"\boxed{\frac12}"), r"\frac{1}{2}", 0.5, "wrong"),  # malformed_operators=False: not repaired
    ("lmm_r1", F(r"\boxed{0.333}"), r"\frac{1}{3}", 0.5, "wrong"),  # |0.333 - 1/3| > 1e-6 rounding
    ("lmm_r1", F(r"\boxed{0.3333333}"), r"\frac{1}{3}", 1.5, "correct"),  # equal at 6 decimals
    ("lmm_r1", F(r"\boxed{\frac{1}{\sqrt{2}}}"), r"\frac{\sqrt{2}}{2}", 1.5, "correct"),
    # units, percent, degrees, thousands separators
    ("lmm_r1", F(r"\boxed{5 \text{ cm}}"), "5", 1.5, "correct"),  # units=True strips the unit
    ("lmm_r1", F(r"\boxed{5}"), r"5\text{ cm}", 1.5, "correct"),
    ("lmm_r1", F(r"\boxed{3 \text{ apples}}"), "3", 1.5, "correct"),
    ("lmm_r1", F(r"\boxed{30^{\circ}}"), "30", 1.5, "correct"),
    ("lmm_r1", F(r"\boxed{50\%}"), "0.5", 1.5, "correct"),
    ("lmm_r1", F(r"\boxed{1,000}"), "1000", 1.5, "correct"),
    ("lmm_r1", F(r"\boxed{3.01}"), "3", 0.5, "wrong"),
    # intervals and sets
    ("lmm_r1", F(r"\boxed{[1, 3)}"), "[1,3)", 1.5, "correct"),
    ("lmm_r1", F(r"\boxed{(1, 3]}"), "[1,3)", 0.5, "wrong"),  # open/closed ends differ
    ("lmm_r1", F(r"\boxed{(-\infty, 2)}"), r"(-\infty,2)", 1.5, "correct"),
    ("lmm_r1", F(r"\boxed{x < 2}"), r"(-\infty,2)", 0.5, "wrong"),  # relation vs interval: not compared
    ("lmm_r1", F(r"\boxed{\{1,2\}}"), r"\{2,1\}", 1.5, "correct"),
    # algebra and choices
    ("lmm_r1", F(r"\boxed{x^2+2x+1}"), "(x+1)^2", 1.5, "correct"),
    ("lmm_r1", F(r"\boxed{a=3}"), "3", 1.5, "correct"),  # the assignment's value is compared
    ("lmm_r1", F(r"\boxed{(B)}"), "B", 1.5, "correct"),
    ("lmm_r1", F(r"\boxed{C}"), "B", 0.5, "wrong"),
    # wrong format (accuracy still graded on the whole response, as in LMM-R1)
    ("lmm_r1", "<think>r</think>\n<answer>\\boxed{3}</answer>", "3", 1.0, "correct"),  # newline: 0 + 1
    ("lmm_r1", "<answer>\\boxed{3}</answer>", "3", 1.0, "correct"),  # no think: 0 + 1
    ("lmm_r1", F(r"\boxed{3}") + " Done.", "3", 1.0, "correct"),  # text after </answer>: 0 + 1
    ("lmm_r1", "<think>a</think><think>b</think><answer>\\boxed{3}</answer>", "3", 1.0, "correct"),
    ("lmm_r1", "  " + F(r"\boxed{3}") + "<|im_end|>", "3", 1.5, "correct"),  # EOS + spaces cleaned: 0.5 + 1
    ("lmm_r1", "", "3", 0.0, "invalid"),  # empty response: 0 + 0
    ("lmm_r1", F(""), "3", 0.5, "invalid"),  # strict format allows an empty answer: 0.5 + 0
    # multiple boxes
    ("lmm_r1", F(r"\boxed{1} and \boxed{2}"), "2", 0.5, "wrong"),  # one match read as the tuple (1, 2)
    ("lmm_r1", r"<think>\boxed{7}</think><answer>\boxed{8}</answer>", "8", 1.5, "correct"),  # rightmost box
    ("lmm_r1", r"<think>\boxed{7}</think><answer>\boxed{8}</answer>", "7", 0.5, "wrong"),
    ("lmm_r1", r"<think>so \boxed{7}</think><answer>8</answer>", "8", 0.5, "wrong"),  # boxed first: 7 graded
    # unparseable gold: 0 and "invalid" (LMM-R1 would give accuracy 1.0)
    ("lmm_r1", F(r"\boxed{5}"), "$ $", 0.5, "invalid"),
    # abstentions (uncertainty_reward = 0.0)
    ("lmm_r1_uncertainty", F("I don't know"), "3", 0.5, "uncertain"),  # 0.5 format + 0.0
    ("lmm_r1", F("I don't know"), "3", 0.5, "invalid"),  # without detection: no answer: 0.5 + 0
    ("lmm_r1_uncertainty", F(r"\boxed{\text{Cannot be determined}}"), "3", 0.5, "uncertain"),
    ("lmm_r1_uncertainty", "I don\u2019t know.", "3", 0.0, "uncertain"),  # no format: 0 + 0.0
    ("lmm_r1_uncertainty", F("There is not enough information to find $x$."), "3", 0.5, "uncertain"),
    ("lmm_r1", F("There is not enough information to find $x$."), "3", 0.5, "wrong"),  # $x$ graded: 0.5 + 0
    ("lmm_r1_uncertainty", "<think>I don't know yet</think><answer>\\boxed{3}</answer>", "3", 1.5, "correct"),
    # hedges: graded as the answer they commit to
    ("lmm_r1_uncertainty", F(r"I'm not sure, but probably $\boxed{3}$"), "3", 1.5, "correct"),
    ("lmm_r1_uncertainty", F(r"Maybe \boxed{4}"), "3", 0.5, "wrong"),
    ("lmm_r1_uncertainty", F(r"It cannot be determined exactly, but \boxed{3}"), "3", 1.5, "correct"),
    ("lmm_r1_uncertainty", F("I'm not sure."), "3", 0.5, "invalid"),  # hedge without answer: no answer
    # unanswerable questions: abstaining is the correct answer
    ("lmm_r1_uncertainty", F("I don't know"), UNANSWERABLE, 1.5, "correct"),  # 0.5 + 1.0
    ("lmm_r1", F("It cannot be determined."), UNANSWERABLE, 1.5, "correct"),  # detected for both rewards
    ("lmm_r1_uncertainty", F(r"\boxed{12}"), UNANSWERABLE, 0.5, "wrong"),  # committed: 0.5 + 0
    ("lmm_r1_uncertainty", F("I'm not sure."), UNANSWERABLE, 0.5, "invalid"),  # neither: 0.5 + 0
    # format-only and accuracy-only rewards
    ("format_strict", F("anything"), "3", 1.0, "correct"),
    ("format_lenient", "<think>a</think>\n<answer>b</answer>\n", "3", 1.0, "correct"),
    ("format_lenient", "<think>a</think>\n<answer> </answer>", "3", 0.0, "invalid"),  # empty answer
    ("math_accuracy", r"\boxed{3}", "3", 1.0, "correct"),
    ("math_uncertainty", "I cannot answer this.", "3", 0.0, "uncertain"),
]


@pytest.mark.parametrize("name, response, gold, total, outcome", TABLE)
def test_reward_table(name, response, gold, total, outcome):
    result = get_reward(name)(response, rec(gold))
    assert (result.total, result.outcome) == (total, outcome)
    assert sum(result.components.values()) == result.total
    assert not result.timed_out


def test_reward_table_size():
    assert len(TABLE) >= 40


def test_uncertainty_reward_and_weights_come_from_config():
    config = RewardConfig(uncertainty_reward=0.2)
    # 0.5 x format (1) + 1.0 x uncertainty reward (0.2) = 0.7
    result = get_reward("lmm_r1_uncertainty", config)(F("I don't know"), rec("3"))
    assert result.total == pytest.approx(0.7) and result.outcome == "uncertain"
    assert result.components == {"format_strict": 0.5, "math_uncertainty": pytest.approx(0.2)}

    # weights {format_lenient: 0.25, math_accuracy: 2.0} on a lenient-only, correct response: 0.25 + 2.0
    weighted = get_reward("lmm_r1", RewardConfig(weights={"format_lenient": 0.25, "math_accuracy": 2.0}))
    result = weighted("<think>r</think>\n<answer>\\boxed{3}</answer>", rec("3"))
    assert result.components == {"format_lenient": 0.25, "math_accuracy": 2.0}
    assert result.total == 2.25 and result.outcome == "correct"


def test_summarize_counts_outcomes_and_timeouts():
    results = [
        RewardResult(1.5, {}, "correct"),
        RewardResult(0.5, {}, "wrong"),
        RewardResult(0.0, {}, "invalid", timed_out=True),
        RewardResult(0.0, {}, "uncertain"),
    ]
    summary = summarize(results)
    assert summary["reward/mean"] == 0.5  # (1.5 + 0.5 + 0 + 0) / 4
    assert summary["reward/correct_frac"] == 0.25 and summary["reward/uncertain_frac"] == 0.25
    assert summary["reward/timeouts"] == 1.0


def test_openrlhf_reward_func_adapter(monkeypatch):
    # OpenRLHF 0.11 calls reward_func(queries, prompts, labels) per sample; the query's image pad is expanded.
    from lmmr1.rewards import openrlhf_func

    monkeypatch.setattr(openrlhf_func, "_REWARD", None)
    monkeypatch.setenv("LMMR1_REWARD", "lmm_r1_uncertainty")
    prompt = "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>q<|im_end|>\n<|im_start|>assistant\n"
    expanded = prompt.replace("<|image_pad|>", "<|image_pad|>" * 6)
    queries = [expanded + F(r"\boxed{3}") + "<|im_end|>", expanded + F("I don't know") + "<|im_end|>"]
    out = openrlhf_func.reward_func(queries, [prompt, prompt], ["3", "3"])
    assert out["rewards"].tolist() == [1.5, 0.5]  # 0.5 + 1 correct; 0.5 + 0 abstention
    assert out["scores"].tolist() == [1.0, 0.0]
    assert out["extra_logs"]["reward_uncertain"].tolist() == [0.0, 1.0]
    assert out["extra_logs"]["reward_timeout"].tolist() == [0.0, 0.0]
    monkeypatch.setattr(openrlhf_func, "_REWARD", None)
