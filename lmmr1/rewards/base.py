"""The reward interface and its registry.

Every reward is a callable `(response_text, record) -> RewardResult`:

    total       the scalar the estimator sees (sum of `components`)
    components  name -> weighted contribution, e.g. {"format_strict": 0.5, "math_accuracy": 1.0}
    outcome     "correct" | "wrong" | "uncertain" | "invalid" (see `lmmr1.algorithms.groups.Outcome`)
    timed_out   the verifier hit its hard timeout on this response (scored 0, counted)

Rewards are chosen by name: `REWARDS` maps a name to a builder `(RewardConfig) -> reward`,
`@register_reward(name)` adds one, `get_reward(name, config)` builds one (an unknown name is an error that
lists the valid names).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from lmmr1.rewards.rules import DEFAULT_ABSTENTION_PHRASES, DEFAULT_HEDGE_PHRASES

if TYPE_CHECKING:
    from lmmr1.data.records import Record

OUTCOMES = ("correct", "wrong", "uncertain", "invalid")


@dataclass(frozen=True)
class RewardResult:
    """The score of one response (see the module docstring)."""

    total: float
    components: Mapping[str, float]
    outcome: str
    timed_out: bool = False

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"RewardResult.outcome {self.outcome!r} is not one of {OUTCOMES}")


class RewardFn(Protocol):
    def __call__(self, response_text: str, record: "Record") -> RewardResult: ...


@dataclass
class RewardConfig:
    """Settings shared by the registered rewards (each reads the fields it needs)."""

    weights: dict[str, float] | None = None
    """Composite rewards: component reward name -> weight. None: the composite's own default
    (LMM-R1: {"format_strict": 0.5, "math_accuracy": 1.0})."""
    outcome_from: str | None = None
    """Composite rewards: the component whose outcome is the composite's outcome. None: the composite's
    grading component (math_accuracy or math_uncertainty)."""
    uncertainty_reward: float = 0.0
    """Score of an abstention on an answerable question (GRPO-UC's fixed r_u; UCPO's estimator builds
    the uncertain channel from outcomes and ignores this value)."""
    abstention_phrases: tuple[str, ...] = DEFAULT_ABSTENTION_PHRASES
    """Phrases that make a final answer an abstention (lmmr1.rewards.rules, docs/rewards.md)."""
    hedge_phrases: tuple[str, ...] = DEFAULT_HEDGE_PHRASES
    """Phrases reported as hedges (never change the grade)."""
    verify_timeout_s: float = 5.0
    """Hard wall-clock limit of one math-verify call; over it the worker is killed and the response scores 0."""
    verify_workers: int = 2
    """math-verify worker processes (calls run in parallel up to this many)."""
    verify_memory_mb: int = 4096
    """Address-space limit of one worker (runaway arithmetic raises MemoryError, scored as invalid)."""


RewardBuilder = Callable[[RewardConfig], RewardFn]

REWARDS: dict[str, RewardBuilder] = {}


def register_reward(name: str) -> Callable[[RewardBuilder], RewardBuilder]:
    """Decorator: `@register_reward("lmm_r1")` on a builder `(RewardConfig) -> reward`."""

    def decorate(builder: RewardBuilder) -> RewardBuilder:
        if name in REWARDS:
            raise ValueError(f"reward {name!r} is already registered")
        REWARDS[name] = builder
        return builder

    return decorate


def get_reward(name: str, config: RewardConfig | None = None) -> RewardFn:
    """Build the reward registered as `name`."""
    if name not in REWARDS:
        raise KeyError(f"unknown reward {name!r}; valid names: {', '.join(sorted(REWARDS))}")
    return REWARDS[name](config or RewardConfig())
