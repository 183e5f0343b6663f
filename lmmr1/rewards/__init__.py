"""Rule-based rewards: `get_reward(name, config)(response_text, record) -> RewardResult`.

Registered names (lmmr1.rewards.library): format_strict, format_lenient, math_accuracy, math_uncertainty,
lmm_r1 (LMM-R1's 0.5 x format + accuracy), lmm_r1_uncertainty; (lmmr1.rewards.games) football_action_value,
football_action, sokoban_plan. Rules: docs/rewards.md, docs/envs.md.
"""

from lmmr1.rewards import games as _games  # noqa: F401  (registers the game rewards)
from lmmr1.rewards import library as _library  # noqa: F401  (registers the rewards)
from lmmr1.rewards.base import OUTCOMES, REWARDS, RewardConfig, RewardFn, RewardResult, get_reward, register_reward
from lmmr1.rewards.library import score_batch, summarize, wrap_gold
from lmmr1.rewards.rules import detect_abstention, extract_response, lenient_format_ok, strict_format_ok
from lmmr1.rewards.verifier import MathVerifierPool, VerifyResult, shared_pool

__all__ = [
    "OUTCOMES",
    "REWARDS",
    "MathVerifierPool",
    "RewardConfig",
    "RewardFn",
    "RewardResult",
    "VerifyResult",
    "detect_abstention",
    "extract_response",
    "get_reward",
    "lenient_format_ok",
    "register_reward",
    "score_batch",
    "shared_pool",
    "strict_format_ok",
    "summarize",
    "wrap_gold",
]
