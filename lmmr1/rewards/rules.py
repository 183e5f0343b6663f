"""Text rules of the rewards: response extraction, the format rules, and abstention / hedge detection.

Pure string functions; nothing here runs math-verify. See docs/rewards.md for the rules with examples.

Response extraction (OpenRLHF `reward_func` receives `query` = decode(prompt + response) with special
tokens). For an image prompt the decoded query holds the *expanded* `<|image_pad|>` run while the prompt
string holds one pad per image, so `query[len(prompt):]` cuts in the wrong place. We split on the assistant
turn marker instead (LMM-R1 `math_verifier.py::get_response_from_query` does the same with the first
marker): the response starts after the k-th `<|im_start|>assistant\n`, where k is the number of markers in
the prompt (a multi-turn prompt holds earlier assistant turns), or after the last marker when no prompt is
given. End-of-sequence tokens are removed and the text is stripped, as LMM-R1 does.

Strict format (LMM-R1, TideDra/lmm-r1 `openrlhf/models/remote_rm/math_verifier.py::verify_format`):
    re.match(r"^<think>(?:(?!</think>).)*</think><answer>(?:(?!</answer>).)*</answer>\\Z", response, re.DOTALL)
    and response.count("<think>") == 1 and response.count("<answer>") == 1
i.e. the (stripped) response starts with <think>, has nothing between </think> and <answer> (not even a
newline) and ends at </answer>.

Lenient format (ours): the same two blocks in the same order, each exactly once, with only whitespace
allowed before <think>, between </think> and <answer>, and after </answer>; the answer block must not be
empty.

Abstention rule (ours; UCPO's detector is not public). The *final-answer slot* is the text inside the last
<answer>...</answer> block (to the end when the block is not closed), or the whole response when there is
no <answer> tag. A response abstains when its final-answer slot
    (a) contains an abstention phrase (`DEFAULT_ABSTENTION_PHRASES`, configurable), and
    (b) holds no committed answer: no \\boxed{...} whose content is a non-empty, non-abstaining answer.
Phrases are matched case-insensitively on whole words after normalising curly apostrophes and removing
LaTeX commands, braces and `$` (so \\boxed{\\text{Cannot be determined}} abstains).

Hedge rule: a hedge ("I'm not sure", "probably", "I think", ...; `DEFAULT_HEDGE_PHRASES`) expresses doubt
but is not an abstention. A hedged response is graded as the answer it commits to; a hedge with no answer
at all is a response with no answer (outcome "invalid"), not an abstention. Likewise an abstention phrase
next to a committed boxed answer ("I cannot determine it exactly, but \\boxed{5}") is graded as the answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

END_TOKENS = ("<|im_end|>", "<|endoftext|>", "<｜end▁of▁sentence｜>", "<end_of_turn>")
ASSISTANT_MARKERS = {
    "chatml": "<|im_start|>assistant\n",  # Qwen2.5-VL, Qwen2.5
}

STRICT_FORMAT_PATTERN = re.compile(r"^<think>(?:(?!</think>).)*</think><answer>(?:(?!</answer>).)*</answer>\Z", re.DOTALL)
LENIENT_FORMAT_PATTERN = re.compile(r"^\s*<think>(?:(?!</think>).)*</think>\s*<answer>((?:(?!</answer>).)*)</answer>\s*\Z", re.DOTALL)

DEFAULT_ABSTENTION_PHRASES: tuple[str, ...] = (
    "i don't know",
    "i do not know",
    "i dont know",
    "don't know the answer",
    "cannot be determined",
    "can't be determined",
    "can not be determined",
    "cannot determine",
    "can't determine",
    "unable to determine",
    "impossible to determine",
    "not possible to determine",
    "cannot be answered",
    "can't be answered",
    "cannot answer",
    "can't answer",
    "unable to answer",
    "not enough information",
    "insufficient information",
    "information is insufficient",
    "not determinable",
    "undeterminable",
    "unanswerable",
)

DEFAULT_HEDGE_PHRASES: tuple[str, ...] = (
    "i'm not sure",
    "i am not sure",
    "not sure",
    "not certain",
    "i think",
    "i believe",
    "probably",
    "maybe",
    "perhaps",
    "might be",
    "likely",
    "my best guess",
    "i guess",
)


def clean_response(text: str) -> str:
    """Remove end-of-sequence tokens anywhere and strip surrounding whitespace (LMM-R1's cleanup)."""
    for token in END_TOKENS:
        text = text.replace(token, "")
    return text.strip()


def extract_response(query: str, prompt: str | None = None, template: str = "chatml") -> str | None:
    """The response part of a decoded prompt+response `query`, cleaned; None when no assistant turn is found.

    Splits on the assistant marker (never `query[len(prompt):]`, which breaks on expanded image pads)."""
    marker = ASSISTANT_MARKERS.get(template)
    if marker is None:
        raise ValueError(f"extract_response: unknown template {template!r}; known: {sorted(ASSISTANT_MARKERS)}")
    positions = [m.end() for m in re.finditer(re.escape(marker), query)]
    if not positions:
        return None
    k = prompt.count(marker) if prompt is not None else 0
    start = positions[k - 1] if 0 < k <= len(positions) else positions[-1]
    return clean_response(query[start:])


def strict_format_ok(response: str) -> bool:
    """LMM-R1's format rule on the cleaned response (see the module docstring)."""
    text = clean_response(response)
    return bool(STRICT_FORMAT_PATTERN.match(text)) and text.count("<think>") == 1 and text.count("<answer>") == 1


def lenient_format_ok(response: str) -> bool:
    """Strict format, but whitespace allowed around and between the blocks; the answer must be non-empty."""
    text = clean_response(response)
    match = LENIENT_FORMAT_PATTERN.match(text)
    return (
        match is not None
        and bool(match.group(1).strip())
        and text.count("<think>") == 1
        and text.count("</think>") == 1
        and text.count("<answer>") == 1
    )


def boxed_contents(text: str) -> list[str]:
    """Contents of every \\boxed{...} (and \\fbox{...}) in order, braces balanced; an unclosed box runs to the end."""
    contents = []
    for match in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, i = 1, match.end()
        while i < len(text) and depth:
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
            i += 1
        contents.append(text[match.end(): i - 1 if depth == 0 else i])
    return contents


def final_answer_slot(response: str) -> str:
    """Inside of the last <answer> block (to the end if unclosed), or the whole response without one."""
    text = clean_response(response)
    start = text.rfind("<answer>")
    if start < 0:
        return text
    body = text[start + len("<answer>"):]
    end = body.find("</answer>")
    return body if end < 0 else body[:end]


def normalize_phrase_text(text: str) -> str:
    """Lowercase; curly apostrophes -> "'"; LaTeX commands, braces, `$` and `~` removed; spaces collapsed."""
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    text = re.sub(r"\\[A-Za-z]+", " ", text)
    text = re.sub(r"[{}$~]|\\[,;:! ]", " ", text)
    return re.sub(r"\s+", " ", text).strip().lower()


def find_phrase(text: str, phrases: tuple[str, ...]) -> str | None:
    """The first of `phrases` that occurs in `text` as whole words (after `normalize_phrase_text`)."""
    normal = normalize_phrase_text(text)
    for phrase in phrases:
        if re.search(r"(?<![a-z0-9])" + re.escape(phrase.lower()) + r"(?![a-z0-9])", normal):
            return phrase
    return None


@dataclass(frozen=True)
class Abstention:
    """What the abstention rule found in one response."""

    abstained: bool
    """The final-answer slot abstains and commits to no answer: outcome "uncertain"."""
    phrase: str | None
    """The abstention phrase found in the final-answer slot (even when a committed answer overrides it)."""
    committed: bool
    """The slot holds a \\boxed{} with a non-empty, non-abstaining answer."""
    hedge: str | None
    """A hedge phrase anywhere in the response (informational: hedges never change the grade)."""


def detect_abstention(
    response: str,
    abstention_phrases: tuple[str, ...] = DEFAULT_ABSTENTION_PHRASES,
    hedge_phrases: tuple[str, ...] = DEFAULT_HEDGE_PHRASES,
) -> Abstention:
    """Apply the abstention rule (module docstring) to one response."""
    slot = final_answer_slot(response)
    phrase = find_phrase(slot, abstention_phrases)
    committed = any(
        normalize_phrase_text(box) and find_phrase(box, abstention_phrases) is None for box in boxed_contents(slot)
    )
    return Abstention(
        abstained=phrase is not None and not committed,
        phrase=phrase,
        committed=committed,
        hedge=find_phrase(clean_response(response), hedge_phrases),
    )
