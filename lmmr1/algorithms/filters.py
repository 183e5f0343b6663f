"""Group filters (dynamic sampling): which prompt groups a training step keeps.

One signature for all:

    group_filter(rewards [P, G], outcomes [P, G] | None, config) -> FilterReport(keep [P], dropped)

`dropped` maps a reason to the indices of the groups dropped for it, so the trainer can log what it
threw away (`FilterReport.metrics()`) and refill the batch (the papers over-sample until enough groups
survive). Filters only decide; they never change rewards or advantages.

    none              keep every group                                   (GRPO, PSR-NSR, LMM-R1)
    drop_all_correct  drop groups whose G responses are all correct      (NGRPO, `filter_groups.strategy
                                                                          = all_correct`; all-wrong groups
                                                                          are kept: they train at
                                                                          A = -1/sqrt(G+1))
    drop_homogeneous  drop groups with accuracy 0 or 1, keep 0 < #correct < G
                                                                         (DAPO arXiv:2503.14476 dynamic
                                                                          sampling; `strategy = all`)
    non_ternary       drop groups without a correct or without a wrong response
                                                                         (UCPO arXiv:2601.22648 NTF; the
                                                                          deterministic channel then always
                                                                          has both classes)

Convention choices:
* "Correct" is outcome CORRECT when outcomes are given; without outcomes it is reward >= `r_max` (the
  task's maximum, 1.0 for a 0/1 verifier), as the NGRPO code tests score == 1.
* For DAPO, "accuracy" counts correct responses, so an all-uncertain group has accuracy 0 and is dropped.
* For UCPO, "wrong" means WRONG or INVALID (an invalid response is a failed answer, not an abstention),
  the same split the `ucpo` estimator uses; non_ternary needs outcomes.
* A group is reported under the first reason that applies, in the order listed in each filter.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from lmmr1.algorithms.groups import Outcome, check_outcomes, check_rewards, in_reward_dtype


@dataclass(frozen=True)
class FilterConfig:
    """Settings shared by the group filters."""

    r_max: float = 1.0
    """Without outcomes, a response counts as correct when its reward >= r_max (the task's maximum)."""

    def __post_init__(self) -> None:
        if not math.isfinite(self.r_max):
            raise ValueError(f"group filter: r_max must be finite, got {self.r_max}")


@dataclass(frozen=True)
class FilterReport:
    """What a filter kept and what it dropped."""

    name: str
    keep: torch.Tensor  # [P] bool
    dropped: dict[str, list[int]] = field(default_factory=dict)
    """reason -> indices of the groups dropped for that reason (every reason the filter knows is a key)."""

    @property
    def num_groups(self) -> int:
        return int(self.keep.numel())

    @property
    def num_dropped(self) -> int:
        return sum(len(groups) for groups in self.dropped.values())

    def metrics(self) -> dict[str, float]:
        """`rollout/` metrics: the kept fraction and the number dropped per reason."""
        out = {"rollout/filter_kept_fraction": float(self.keep.float().mean())}
        out.update({f"rollout/filter_dropped_{reason}": float(len(groups)) for reason, groups in self.dropped.items()})
        return out


FilterFn = Callable[[torch.Tensor, "torch.Tensor | None", FilterConfig], "dict[str, torch.Tensor]"]


@dataclass(frozen=True)
class GroupFilter:
    """A registered filter; `fn` returns {reason: drop mask [P]} in priority order."""

    name: str
    fn: FilterFn
    needs_outcomes: bool

    def __call__(
        self, rewards: torch.Tensor, outcomes: torch.Tensor | None = None, config: FilterConfig | None = None
    ) -> FilterReport:
        config = FilterConfig() if config is None else config
        check_rewards(rewards, f"filter {self.name}")
        check_outcomes(outcomes, rewards, f"filter {self.name}", required=self.needs_outcomes)
        reasons = self.fn(rewards, outcomes, config)
        keep = torch.ones(rewards.shape[0], dtype=torch.bool, device=rewards.device)  # [P]
        dropped: dict[str, list[int]] = {}
        for reason, drop in reasons.items():
            newly = drop & keep  # [P]  first reason wins
            dropped[reason] = newly.nonzero().flatten().tolist()
            keep = keep & ~drop
        return FilterReport(self.name, keep, dropped)


FILTERS: dict[str, GroupFilter] = {}


def register_filter(name: str, *, needs_outcomes: bool = False) -> Callable[[FilterFn], GroupFilter]:
    """Register `fn(rewards, outcomes, config) -> {reason: drop [P]}` under `name`; returns the filter."""

    def decorator(fn: FilterFn) -> GroupFilter:
        if name in FILTERS:
            raise ValueError(f"group filter {name!r} is already registered")
        FILTERS[name] = GroupFilter(name, fn, needs_outcomes)
        return FILTERS[name]

    return decorator


def get_filter(name: str) -> GroupFilter:
    """The filter registered under `name`; the error lists the valid names."""
    try:
        return FILTERS[name]
    except KeyError:
        raise KeyError(f"unknown group filter {name!r}; valid names: {sorted(FILTERS)}") from None


def correct_mask(rewards: torch.Tensor, outcomes: torch.Tensor | None, r_max: float) -> torch.Tensor:
    """[P, G] bool: outcome CORRECT, or reward >= r_max when there are no outcomes."""
    if outcomes is not None:
        return outcomes == int(Outcome.CORRECT)
    return rewards >= in_reward_dtype(r_max, rewards)


def group_composition(rewards: torch.Tensor, outcomes: torch.Tensor | None, r_max: float) -> dict[str, torch.Tensor]:
    """[P] bool masks of how many responses of each group are correct (`correct_mask`'s convention):

        all_correct    #correct = G
        none_correct   #correct = 0      (wrong, invalid or uncertain responses only)
        mixed          0 < #correct < G

    Only mixed groups give GRPO a gradient. NGRPO also trains none_correct groups, each response at
    A = -1/sqrt(G+1) (0/1 rewards, one virtual sample): when most groups are none_correct -- a task the policy
    cannot solve yet -- nearly every sampled response is pushed down, which can wreck a fragile output format.
    The engines log the three fractions (`reward/groups_*_frac`) so that this shows before it does harm.
    """
    correct = correct_mask(rewards, outcomes, r_max)  # [P, G]
    all_correct, none_correct = correct.all(dim=-1), ~correct.any(dim=-1)  # [P]
    return {"all_correct": all_correct, "none_correct": none_correct, "mixed": ~(all_correct | none_correct)}


@register_filter("none")
def no_filter(rewards: torch.Tensor, outcomes: torch.Tensor | None, config: FilterConfig):
    """Keep every group."""
    return {}


@register_filter("drop_all_correct")
def drop_all_correct(rewards: torch.Tensor, outcomes: torch.Tensor | None, config: FilterConfig):
    """NGRPO: drop groups whose responses are all correct; keep mixed and all-wrong groups."""
    correct = correct_mask(rewards, outcomes, config.r_max)  # [P, G]
    return {"all_correct": correct.all(dim=-1)}


@register_filter("drop_homogeneous")
def drop_homogeneous(rewards: torch.Tensor, outcomes: torch.Tensor | None, config: FilterConfig):
    """DAPO dynamic sampling: keep a group only when 0 < #correct < G."""
    correct = correct_mask(rewards, outcomes, config.r_max)  # [P, G]
    return {"all_correct": correct.all(dim=-1), "none_correct": ~correct.any(dim=-1)}


@register_filter("non_ternary", needs_outcomes=True)
def non_ternary(rewards: torch.Tensor, outcomes: torch.Tensor | None, config: FilterConfig):
    """UCPO non-ternary filtering (NTF): keep a group only when it has >= 1 correct and >= 1 wrong (or
    invalid) response; uncertain responses may or may not be present."""
    correct = outcomes == int(Outcome.CORRECT)  # [P, G]
    wrong = (outcomes == int(Outcome.WRONG)) | (outcomes == int(Outcome.INVALID))  # [P, G]
    return {"no_correct": ~correct.any(dim=-1), "no_wrong": ~wrong.any(dim=-1)}
