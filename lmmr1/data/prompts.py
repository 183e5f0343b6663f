"""System prompts used when building records from datasets that carry none.

`LMM_R1_SYSTEM_PROMPT` is the one in LMM-R1's example rows (TideDra/lmm-r1 `examples/data/test_message.jsonl`),
kept verbatim, grammar included, because the released policies were trained with it. `ABSTAIN_SYSTEM_PROMPT` adds the licence to abstain that UCPO-style
unanswerable variants need (our wording: the UCPO prompt is not public).
"""

LMM_R1_SYSTEM_PROMPT = (
    "Solve the question. The user asks a question, and you solves it. You first thinks about the reasoning "
    "process in the mind and then provides the user with the answer. The answer is in latex format and "
    "wrapped in $...$. The final answer must be wrapped using the \\boxed{} command. The reasoning process "
    "and answer are enclosed within <think> </think> and <answer> </answer> tags, respectively, i.e., "
    "<think> Since $1+1=2$, so the answer is $2$. </think><answer> The answer is $\\boxed{2}$ </answer>, "
    "which means assistant's output should start with <think> and end with </answer>."
)

ABSTAIN_SYSTEM_PROMPT = LMM_R1_SYSTEM_PROMPT + (
    " If the question cannot be answered from the information given, say so: answer "
    "<answer> I don't know </answer> instead of guessing."
)

SYSTEM_PROMPTS = {"lmm_r1": LMM_R1_SYSTEM_PROMPT, "abstain": ABSTAIN_SYSTEM_PROMPT, "none": ""}


def system_prompt(name_or_text: str) -> str:
    """A named prompt ("lmm_r1", "abstain", "none") or the text itself when it is not a name."""
    return SYSTEM_PROMPTS.get(name_or_text, name_or_text)
