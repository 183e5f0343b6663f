"""The registered rewards: format, math accuracy (math-verify), uncertainty, and LMM-R1's composite.

| name                 | total                                           | outcome                               |
|----------------------|-------------------------------------------------|---------------------------------------|
| `format_strict`      | 1 if LMM-R1's strict format holds, else 0      | correct / invalid                     |
| `format_lenient`     | 1 if the lenient format holds, else 0           | correct / invalid                     |
| `math_accuracy`      | 1 if math-verify says the answer equals gold    | correct / wrong / invalid             |
| `math_uncertainty`   | math_accuracy, or `uncertainty_reward` when the response abstains | + uncertain          |
| `lmm_r1`             | 0.5 x format_strict + 1.0 x math_accuracy       | math_accuracy's                       |
| `lmm_r1_uncertainty` | 0.5 x format_strict + 1.0 x math_uncertainty    | math_uncertainty's                    |

LMM-R1's reward (TideDra/lmm-r1 `openrlhf/models/remote_rm/math_verifier.py`): total = 0.5 x format +
accuracy, in {0, 0.5, 1, 1.5}; the gold answer is `$`-wrapped when it does not start with `$`; the whole
response is parsed by math-verify with boxed answers first (all boxes read together: two boxes are a tuple,
so a self-correction with two boxes matches no single gold). Our choices where
LMM-R1's code does something else (docs/rewards.md, "Deviations"):
  * an unparseable gold scores 0 with outcome "invalid" (LMM-R1: 1.0 "to skip the example", which under
    NGRPO's virtual max-reward sample would still produce gradients);
  * `verify(gold, pred)` in math-verify's documented order (LMM-R1 passes them swapped);
  * a hard timeout per call: a timed-out or crashed check scores 0, outcome "invalid", and is counted.

Outcome "invalid" = no gradable answer: nothing could be extracted from the response, the verifier timed
out or failed, or the gold does not parse. Abstention (docs/rewards.md, `rules.detect_abstention`): on an
answerable question `math_uncertainty` gives outcome "uncertain"; on a question whose gold is
`UNANSWERABLE`, abstaining is the right answer (outcome "correct", accuracy 1) for both math rewards and
any committed answer is "wrong".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from lmmr1.data.records import Record
from lmmr1.rewards.base import RewardConfig, RewardFn, RewardResult, register_reward
from lmmr1.rewards.rules import clean_response, detect_abstention, lenient_format_ok, strict_format_ok
from lmmr1.rewards.verifier import MathVerifierPool, VerifyResult, shared_pool

LMM_R1_WEIGHTS = {"format_strict": 0.5, "math_accuracy": 1.0}
LMM_R1_UNCERTAINTY_WEIGHTS = {"format_strict": 0.5, "math_uncertainty": 1.0}


def wrap_gold(answer: str) -> str:
    """LMM-R1's gold normalisation: strip, and wrap in `$...$` unless it already starts with `$`."""
    answer = answer.strip()
    return answer if answer.startswith("$") else f"${answer}$"


# -- format -----------------------------------------------------------------------------------------------


@register_reward("format_strict")
def build_format_strict(config: RewardConfig) -> RewardFn:
    """1.0 when LMM-R1's strict <think>...</think><answer>...</answer> format holds (rules.strict_format_ok)."""

    def format_strict(response_text: str, record: Record) -> RewardResult:
        ok = strict_format_ok(response_text)
        return RewardResult(float(ok), {"format": float(ok)}, "correct" if ok else "invalid")

    return format_strict


@register_reward("format_lenient")
def build_format_lenient(config: RewardConfig) -> RewardFn:
    """1.0 when the lenient format holds (whitespace allowed around the blocks; rules.lenient_format_ok)."""

    def format_lenient(response_text: str, record: Record) -> RewardResult:
        ok = lenient_format_ok(response_text)
        return RewardResult(float(ok), {"format": float(ok)}, "correct" if ok else "invalid")

    return format_lenient


# -- math accuracy and uncertainty ------------------------------------------------------------------------


@dataclass
class MathGrader:
    """Grades one response against a record's gold with math-verify (in `pool`) and the abstention rule.

    `detect_uncertainty`: report abstentions on answerable questions as outcome "uncertain" (else they
    are graded like any other text, usually "invalid"). Abstention is always detected on UNANSWERABLE
    questions, where it is the correct answer. `pool`: None uses `shared_pool(...)` for the config's
    verify settings."""

    config: RewardConfig
    detect_uncertainty: bool
    pool: MathVerifierPool | None = None

    def _pool(self) -> MathVerifierPool:
        """The given pool, else the process-wide one for these settings (re-created if it was closed)."""
        if self.pool is not None:
            return self.pool
        return shared_pool(self.config.verify_workers, self.config.verify_timeout_s, self.config.verify_memory_mb)

    def __call__(self, response_text: str, record: Record) -> RewardResult:
        text = clean_response(response_text)
        if record.unanswerable or self.detect_uncertainty:
            abstention = detect_abstention(text, self.config.abstention_phrases, self.config.hedge_phrases)
            if abstention.abstained:
                if record.unanswerable:
                    return RewardResult(1.0, {"accuracy": 1.0}, "correct")
                r_u = float(self.config.uncertainty_reward)
                return RewardResult(r_u, {"uncertainty": r_u}, "uncertain")
        if record.unanswerable:
            # Any committed answer to an unanswerable question is wrong; no answer at all is invalid.
            result = self._pool().verify(text, None)
            outcome = "wrong" if result.status == "extracted" else "invalid"
            return RewardResult(0.0, {"accuracy": 0.0}, outcome, timed_out=result.status == "timeout")
        result = self._pool().verify(text, wrap_gold(record.answer))
        return grade_from_verify(result)


def grade_from_verify(result: VerifyResult) -> RewardResult:
    """correct -> 1.0 "correct"; wrong -> 0.0 "wrong"; no answer / bad gold / timeout / error -> 0.0 "invalid"."""
    if result.status == "correct":
        return RewardResult(1.0, {"accuracy": 1.0}, "correct")
    if result.status == "wrong":
        return RewardResult(0.0, {"accuracy": 0.0}, "wrong")
    return RewardResult(0.0, {"accuracy": 0.0}, "invalid", timed_out=result.status == "timeout")


@register_reward("math_accuracy")
def build_math_accuracy(config: RewardConfig) -> RewardFn:
    """1.0 when math-verify finds the response's (boxed-first) answer equal to the gold, else 0.0."""
    return MathGrader(config, detect_uncertainty=False)


@register_reward("math_uncertainty")
def build_math_uncertainty(config: RewardConfig) -> RewardFn:
    """math_accuracy, plus outcome "uncertain" (score `uncertainty_reward`) for an abstention."""
    return MathGrader(config, detect_uncertainty=True)


# -- composites -------------------------------------------------------------------------------------------


@dataclass
class CompositeReward:
    """total = sum_i weight_i x component_i.total; the outcome is `outcome_from`'s outcome.

    `components` of the result are the weighted terms, keyed by component name (they sum to `total`)."""

    parts: dict[str, tuple[float, RewardFn]]
    outcome_from: str

    def __call__(self, response_text: str, record: Record) -> RewardResult:
        components: dict[str, float] = {}
        outcome = "invalid"
        timed_out = False
        for name, (weight, reward) in self.parts.items():
            result = reward(response_text, record)
            components[name] = weight * result.total
            timed_out = timed_out or result.timed_out
            if name == self.outcome_from:
                outcome = result.outcome
        return RewardResult(sum(components.values()), components, outcome, timed_out)


def build_composite(config: RewardConfig, default_weights: dict[str, float], default_outcome_from: str) -> CompositeReward:
    """A CompositeReward over registered component rewards (weights from config, else the defaults)."""
    from lmmr1.rewards.base import REWARDS, get_reward

    weights = dict(config.weights) if config.weights is not None else dict(default_weights)
    outcome_from = config.outcome_from or default_outcome_from
    composites = {"lmm_r1", "lmm_r1_uncertainty", "football_action"}
    for name, weight in weights.items():
        if name not in REWARDS or name in composites:
            valid = sorted(set(REWARDS) - composites)
            raise KeyError(f"composite reward: unknown component {name!r}; valid components: {valid}")
        if not isinstance(weight, (int, float)) or weight != weight:
            raise ValueError(f"composite reward: weight of {name!r} must be a number, got {weight!r}")
    if outcome_from not in weights:
        raise ValueError(
            f"composite reward: outcome_from {outcome_from!r} is not one of the weighted components {sorted(weights)}"
        )
    return CompositeReward({name: (float(w), get_reward(name, config)) for name, w in weights.items()}, outcome_from)


@register_reward("lmm_r1")
def build_lmm_r1(config: RewardConfig) -> RewardFn:
    """LMM-R1's reward: 0.5 x format_strict + 1.0 x math_accuracy (weights overridable by config)."""
    return build_composite(config, LMM_R1_WEIGHTS, "math_accuracy")


@register_reward("lmm_r1_uncertainty")
def build_lmm_r1_uncertainty(config: RewardConfig) -> RewardFn:
    """LMM-R1's reward with abstention detection: 0.5 x format_strict + 1.0 x math_uncertainty."""
    return build_composite(config, LMM_R1_UNCERTAINTY_WEIGHTS, "math_uncertainty")


# -- batches ----------------------------------------------------------------------------------------------


def score_batch(
    reward: RewardFn, responses: Sequence[str], records: Sequence[Record], max_threads: int = 8
) -> list[RewardResult]:
    """Score many responses concurrently (threads; the verifier pool bounds the real parallelism)."""
    if len(responses) != len(records):
        raise ValueError(f"score_batch: {len(responses)} responses but {len(records)} records")
    with ThreadPoolExecutor(max_workers=max(1, max_threads)) as executor:
        return list(executor.map(reward, responses, records))


def summarize(results: Sequence[RewardResult]) -> dict[str, float]:
    """Metrics of a batch under the `reward/` namespace: mean total, outcome fractions, timeout count."""
    n = len(results)
    counts = Counter(r.outcome for r in results)
    summary = {"reward/mean": sum(r.total for r in results) / n if n else 0.0}
    for outcome in ("correct", "wrong", "uncertain", "invalid"):
        summary[f"reward/{outcome}_frac"] = counts[outcome] / n if n else 0.0
    summary["reward/timeouts"] = float(sum(r.timed_out for r in results))
    return summary
