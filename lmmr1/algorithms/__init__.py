"""lmmr1's RL algorithms, pure torch: advantage estimators, group filters, the policy loss.

    groups       Outcome encoding, [N] -> [P, G] grouping, input validation
    estimators   (rewards [P, G], outcomes [P, G] | None, config) -> (advantages [P, G], keep [P])
    filters      (rewards [P, G], outcomes [P, G] | None, config) -> FilterReport(keep [P], dropped)
    policy_loss  clipped surrogate, aggregation modes, KL, entropy

Equations, sources and convention choices are in each module's docstring and in docs/algorithms.md.
"""

from lmmr1.algorithms.estimators import (
    ESTIMATORS,
    DrGRPOConfig,
    Estimator,
    GroupNormConfig,
    NGRPOConfig,
    ReinforceBaselineConfig,
    RLOOConfig,
    UCPOConfig,
    WReinforceConfig,
    estimate_kept_groups,
    get_estimator,
    register_estimator,
    ucpo_gamma,
    whitens_tokens,
)
from lmmr1.algorithms.filters import (
    FILTERS,
    FilterConfig,
    FilterReport,
    GroupFilter,
    get_filter,
    group_composition,
    register_filter,
)
from lmmr1.algorithms.groups import GroupInputError, Outcome, as_groups, outcomes_to_tensor
from lmmr1.algorithms.policy_loss import (
    PolicyLossConfig,
    PolicyLossStats,
    aggregate,
    entropy_from_logits,
    kl_estimate,
    kl_penalized_advantages,
    policy_loss,
    whiten_token_advantages,
)

__all__ = [
    "ESTIMATORS",
    "FILTERS",
    "DrGRPOConfig",
    "Estimator",
    "FilterConfig",
    "FilterReport",
    "GroupFilter",
    "GroupInputError",
    "GroupNormConfig",
    "NGRPOConfig",
    "Outcome",
    "PolicyLossConfig",
    "PolicyLossStats",
    "RLOOConfig",
    "ReinforceBaselineConfig",
    "UCPOConfig",
    "WReinforceConfig",
    "aggregate",
    "as_groups",
    "entropy_from_logits",
    "estimate_kept_groups",
    "get_estimator",
    "get_filter",
    "group_composition",
    "kl_estimate",
    "kl_penalized_advantages",
    "outcomes_to_tensor",
    "policy_loss",
    "register_estimator",
    "register_filter",
    "ucpo_gamma",
    "whiten_token_advantages",
    "whitens_tokens",
]
