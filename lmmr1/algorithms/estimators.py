"""Advantage estimators: grouped scalar rewards -> one advantage per response.

One signature for all (the trainer never branches on a name):

    estimator(rewards [P, G], outcomes [P, G] | None, config) -> (advantages [P, G], keep [P])

P prompts, G samples per prompt. `advantages[p, i]` is broadcast by the loss to every token of response
(p, i). `keep[p]` is False for a group the estimator cannot score (only UCPO drops groups: its
deterministic channel needs a correct and a wrong sample); dropped groups get advantage 0. Outcomes are
`lmmr1.algorithms.groups.Outcome` codes.

Notation: r_i reward of sample i in its group, mu and sigma the group mean and std, eps a small constant.

    group_norm          GRPO, arXiv:2402.03300       A_i = (r_i - mu) / (sigma + eps)
    rloo                arXiv:2402.14740             A_i = r_i - (sum_j r_j - r_i) / (G - 1)
    reinforce_baseline  REINFORCE++-baseline,        A_i = r_i - mu, then whitened over the whole batch:
                        arXiv:2501.03262             A <- (A - mean(A)) / sqrt(max(var(A), 1e-8))
    dr_grpo             Dr.GRPO, arXiv:2503.20783    A_i = r_i - mu            (no std; pair it with the
                                                     loss mode seq-mean-token-sum-norm)
    w_reinforce         PSR-NSR, arXiv:2506.01347    A_i = +lam if correct, -1 otherwise   (lam = 0.1)
    ngrpo               NGRPO, arXiv:2509.18851      R' = {r_1..r_G} + m copies of r_max (Eq. 5-6)
                                                     A_i = (r_i - mean(R')) / (std(R') + eps), i <= G
    ucpo                UCPO, arXiv:2601.22648       ternary advantage decoupling + dynamic uncertainty
                                                     reward gamma(q), see `ucpo` below

Convention choices, each a config field where the sources disagree:

* std: `torch.std`'s unbiased (Bessel, divide by n - 1) std, as OpenRLHF 0.11.2's `group_norm` and the
  official NGRPO code (verl fork) compute it; population std (divide by n) is `unbiased_std=False`.
  NGRPO's Eq. 6 prints the population form, but its Figure 3 values match the unbiased one (the table in
  tests/test_estimators.py pins both; NGRPO's numbers move ~6% between them).
* eps sits outside the square root, added to the std: (r - mu) / (sigma + eps). GRPO's default is
  OpenRLHF's 1e-9 (LMM-R1 trains on OpenRLHF); NGRPO's is 1e-6 (its code). reinforce_baseline's whitening
  instead clamps the variance under the root, as OpenRLHF does: rsqrt(max(var, 1e-8)).
* A group of one sample (G = 1) has no baseline: group_norm, reinforce_baseline and dr_grpo give 0; rloo
  refuses it (its leave-one-out mean is undefined); ngrpo returns the raw reward, as the official code
  does (mean 0, std 1, no virtual sample), or the calibrated value with `single_sample="calibrated"`.
* NGRPO is computed in float64 on the shifted rewards d_i = r_i - r_max (shift-invariant, and the virtual
  samples' d is exactly 0), so an all-r_max group gives exactly 0. r_max is first rounded to the rewards'
  dtype (0.7 in float32 is 0.69999999), so a float32 reward equal to float32(r_max) is the maximum. Rewards
  above r_max are an error: the virtual sample must be the task's maximum, not the group's.
* reinforce_baseline with `whiten` whitens with equal weight per response. OpenRLHF whitens per token, i.e.
  weights each response by its length, and after adding the KL reward penalty; the two agree when all
  responses have the same length and there is no KL in the reward. `whiten_tokens` is OpenRLHF's exact
  order (LMM-R1's FRE/MGT runs put KL in the reward; their stage configs use it): the estimator returns
  r - mean, then both engines apply `policy_loss.kl_penalized_advantages` and
  `policy_loss.whiten_token_advantages` over the kept responses. It is a batch statistic: filter groups
  before calling it (`estimate_kept_groups`, as both engines do).
* w_reinforce: "correct" is outcome CORRECT when outcomes are given, else reward >= `correct_reward`;
  every other response (wrong, uncertain, invalid) gets -1, the NGRPO repo's 0/1 implementation
  (`compute_psr_nsr_outcome_advantage`, 'weighted': lam * r for r = 1, r - 1 for r = 0).
* UCPO: see `ucpo`; the paper's low-resource smoothing (LRE) is not implemented (formula unknown).
* Internals run in float64; advantages come back in the rewards' dtype promoted to at least float32.
* No reward clipping here: OpenRLHF clips the shaped reward to --reward.clip_range (default +-10) later,
  in `compute_reward`; GRPO advantages stay below (G - 1) / sqrt(G) in magnitude (7.9 at G = 64).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch

from lmmr1.algorithms.groups import GroupInputError, Outcome, check_outcomes, check_rewards, in_reward_dtype

EstimatorFn = Callable[[torch.Tensor, "torch.Tensor | None", Any], "tuple[torch.Tensor, torch.Tensor]"]


# ---------------------------------------------------------------------------------------------------------
# Registry: one dict, one decorator, one getter.
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimator:
    """A registered estimator: call it as `estimator(rewards [P, G], outcomes [P, G] | None, config)`.

    The call validates the inputs (finite floating [P, G] rewards; integer Outcome codes of the same
    shape, required when `needs_outcomes`; a config of `config_cls`, default-constructed when None) and
    the output (finite advantages), and names the estimator and the offending group in every error.
    """

    name: str
    fn: EstimatorFn
    config_cls: type
    needs_outcomes: bool
    doc: str

    def __call__(
        self, rewards: torch.Tensor, outcomes: torch.Tensor | None = None, config: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        config = self.config_cls() if config is None else config
        if not isinstance(config, self.config_cls):
            raise TypeError(f"{self.name}: config must be a {self.config_cls.__name__}, got {type(config).__name__}")
        check_rewards(rewards, self.name)
        check_outcomes(outcomes, rewards, self.name, required=self.needs_outcomes)
        advantages, keep = self.fn(rewards, outcomes, config)
        finite = torch.isfinite(advantages).all(dim=-1)  # [P]
        if not bool(finite.all()):
            p = int((~finite).nonzero()[0])
            raise GroupInputError(
                f"{self.name}: advantages of group {p} overflowed (rewards {rewards[p].tolist()}); "
                f"rescale the rewards"
            )
        return advantages, keep

    def make_config(self, **overrides: Any) -> Any:
        """Build this estimator's config from keyword overrides; unknown keys are an error."""
        names = [f.name for f in dataclasses.fields(self.config_cls)]
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise TypeError(f"{self.name}: unknown config key(s) {unknown}; valid keys: {names}")
        return self.config_cls(**overrides)


def whitens_tokens(config: Any) -> bool:
    """Whether the engine whitens token advantages after the KL penalty (reinforce_baseline's whiten_tokens)."""
    return bool(getattr(config, "whiten_tokens", False))


def estimate_kept_groups(
    estimator: Estimator, rewards: torch.Tensor, outcomes: torch.Tensor | None, config: Any, keep: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The estimator on the groups a filter kept, as dynamic sampling does it: the dropped groups leave the
    batch before any batch statistic is taken (reinforce_baseline's whitening), so they change no kept
    advantage:

        A[keep], k[keep] = estimator(rewards[keep], outcomes[keep]);   A[~keep] = 0, k[~keep] = False

    keep [P] bool (the filter's). Returns (advantages [P, G], keep [P]): the filter's keep and the estimator's.
    Group-wise estimators give the same kept advantages either way; only batch statistics change."""
    advantages = torch.zeros(rewards.shape, dtype=torch.promote_types(rewards.dtype, torch.float32),
                             device=rewards.device)  # [P, G]
    kept = torch.zeros_like(keep)  # [P]
    if bool(keep.any()):
        A, k = estimator(rewards[keep], None if outcomes is None else outcomes[keep], config)
        advantages[keep] = A.to(advantages.dtype)
        kept[keep] = k
    return advantages, kept


ESTIMATORS: dict[str, Estimator] = {}


def register_estimator(
    name: str, config_cls: type, *, needs_outcomes: bool = False
) -> Callable[[EstimatorFn], Estimator]:
    """Register `fn(rewards, outcomes, config) -> (advantages, keep)` under `name`; returns the `Estimator`."""

    def decorator(fn: EstimatorFn) -> Estimator:
        if name in ESTIMATORS:
            raise ValueError(f"estimator {name!r} is already registered")
        ESTIMATORS[name] = Estimator(name, fn, config_cls, needs_outcomes, (fn.__doc__ or "").strip())
        return ESTIMATORS[name]

    return decorator


def get_estimator(name: str) -> Estimator:
    """The estimator registered under `name`; the error lists the valid names."""
    try:
        return ESTIMATORS[name]
    except KeyError:
        raise KeyError(f"unknown advantage estimator {name!r}; valid names: {sorted(ESTIMATORS)}") from None


# ---------------------------------------------------------------------------------------------------------
# Shared pieces.
# ---------------------------------------------------------------------------------------------------------


def _check_eps(owner: str, **values: float) -> None:
    for key, value in values.items():
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{owner}: {key} must be a finite number > 0, got {value}")


def _out(advantages: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    """Cast float64 internals back to the rewards' dtype, at least float32."""
    return advantages.to(torch.promote_types(rewards.dtype, torch.float32))


def _keep_all(rewards: torch.Tensor) -> torch.Tensor:
    return torch.ones(rewards.shape[0], dtype=torch.bool, device=rewards.device)  # [P]


def group_std(r: torch.Tensor, unbiased: bool) -> torch.Tensor:
    """Std over the last axis, keepdim; 0 where there are too few samples (G = 1 with Bessel's n - 1)."""
    n = r.shape[-1]
    if unbiased and n < 2:
        return torch.zeros_like(r[..., :1])  # [P, 1]
    return r.std(dim=-1, keepdim=True, correction=1 if unbiased else 0)  # [P, 1]


# ---------------------------------------------------------------------------------------------------------
# GRPO family.
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupNormConfig:
    """GRPO group normalisation: A_i = (r_i - mu) / (sigma + eps)."""

    eps: float = 1e-9
    """Added to the group std, outside the root. 1e-9 is OpenRLHF 0.11.2's `group_norm`; verl uses 1e-6."""
    unbiased_std: bool = True
    """Bessel-corrected std (divide by G - 1, `torch.std`'s default, OpenRLHF and verl); False: divide by G."""

    def __post_init__(self) -> None:
        _check_eps("group_norm", eps=self.eps)


@register_estimator("group_norm", GroupNormConfig)
def group_norm(rewards: torch.Tensor, outcomes: torch.Tensor | None, config: GroupNormConfig):
    """GRPO (arXiv:2402.03300): A_i = (r_i - mean(r)) / (std(r) + eps), per group."""
    r = rewards.double()  # [P, G]
    mu = r.mean(dim=-1, keepdim=True)  # [P, 1]
    sigma = group_std(r, config.unbiased_std)  # [P, 1]
    A = (r - mu) / (sigma + config.eps)  # [P, G]
    return _out(A, rewards), _keep_all(rewards)


@dataclass(frozen=True)
class RLOOConfig:
    """RLOO has no parameters: the baseline of sample i is the mean of the other G - 1 samples."""


@register_estimator("rloo", RLOOConfig)
def rloo(rewards: torch.Tensor, outcomes: torch.Tensor | None, config: RLOOConfig):
    """RLOO (arXiv:2402.14740): A_i = r_i - (sum_j r_j - r_i) / (G - 1). Needs G >= 2."""
    G = rewards.shape[-1]
    if G < 2:
        raise GroupInputError(f"rloo: the leave-one-out baseline needs G >= 2 samples per group, got G={G}")
    r = rewards.double()  # [P, G]
    baseline = (r.sum(dim=-1, keepdim=True) - r) / (G - 1)  # [P, G]
    return _out(r - baseline, rewards), _keep_all(rewards)


@dataclass(frozen=True)
class ReinforceBaselineConfig:
    """REINFORCE++-baseline: group-mean baseline, then whitening over the whole batch."""

    whiten: bool = True
    """Whiten over all P * G responses here, each response weighted equally (before any KL penalty)."""
    whiten_tokens: bool = False
    """Instead, OpenRLHF's order (LMM-R1's runs): the estimator returns r - mean; the engine adds the KL reward
    penalty and then whitens over every response token of the batch (`policy_loss.whiten_token_advantages`),
    long responses weighing more. Excludes `whiten`."""
    whiten_var_eps: float = 1e-8
    """Lower clamp on the batch variance, under the root: rsqrt(max(var, eps)), as in OpenRLHF."""

    def __post_init__(self) -> None:
        _check_eps("reinforce_baseline", whiten_var_eps=self.whiten_var_eps)
        if self.whiten and self.whiten_tokens:
            raise ValueError("reinforce_baseline: whiten (per response, here) and whiten_tokens (per token, after the "
                             "KL penalty, in the engine) exclude each other; set whiten=false with whiten_tokens=true")


@register_estimator("reinforce_baseline", ReinforceBaselineConfig)
def reinforce_baseline(rewards: torch.Tensor, outcomes: torch.Tensor | None, config: ReinforceBaselineConfig):
    """REINFORCE++-baseline (arXiv:2501.03262): A_i = r_i - mean(r); then over the batch
    A <- (A - mean(A)) * rsqrt(max(var_pop(A), eps)), every response weighted equally."""
    r = rewards.double()  # [P, G]
    A = r - r.mean(dim=-1, keepdim=True)  # [P, G]
    if config.whiten:
        mean = A.mean()  # []
        var = (A - mean).pow(2).mean()  # [] population variance, as OpenRLHF
        A = (A - mean) * var.clamp(min=config.whiten_var_eps).rsqrt()  # [P, G]
    return _out(A, rewards), _keep_all(rewards)


@dataclass(frozen=True)
class DrGRPOConfig:
    """Dr.GRPO has no estimator parameters (its other half is the loss mode seq-mean-token-sum-norm)."""


@register_estimator("dr_grpo", DrGRPOConfig)
def dr_grpo(rewards: torch.Tensor, outcomes: torch.Tensor | None, config: DrGRPOConfig):
    """Dr.GRPO (arXiv:2503.20783): A_i = r_i - mean(r), no division by the std."""
    r = rewards.double()  # [P, G]
    return _out(r - r.mean(dim=-1, keepdim=True), rewards), _keep_all(rewards)


@dataclass(frozen=True)
class WReinforceConfig:
    """Weighted REINFORCE (PSR-NSR): A = +lam for a correct response, -1 for any other."""

    lam: float = 0.1
    """Weight of positive-sample reinforcement (the paper's lambda; 0.1 in its runs and in the NGRPO repo)."""
    correct_reward: float = 1.0
    """Without outcomes, a response is correct when its reward >= this value (1.0 for a 0/1 verifier)."""

    def __post_init__(self) -> None:
        _check_eps("w_reinforce", lam=self.lam)


@register_estimator("w_reinforce", WReinforceConfig)
def w_reinforce(rewards: torch.Tensor, outcomes: torch.Tensor | None, config: WReinforceConfig):
    """W-REINFORCE (arXiv:2506.01347): L = lam * L_PSR + L_NSR, i.e. A_i = +lam (correct), -1 (otherwise).
    No baseline, no normalisation. Correct = outcome CORRECT, or reward >= correct_reward without outcomes."""
    if outcomes is not None:
        correct = outcomes == int(Outcome.CORRECT)  # [P, G]
    else:
        correct = rewards >= in_reward_dtype(config.correct_reward, rewards)  # [P, G]
    A = torch.full(rewards.shape, -1.0, dtype=torch.float64, device=rewards.device)  # [P, G]
    A[correct] = config.lam
    return _out(A, rewards), _keep_all(rewards)


# ---------------------------------------------------------------------------------------------------------
# NGRPO.
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NGRPOConfig:
    """NGRPO advantage calibration (arXiv:2509.18851 §4.1; official code `nangongrui-ngr/NGRPO`)."""

    r_max: float = 1.0
    """The task's maximum achievable reward (not the group's), the virtual sample's reward
    (`algorithm.max_reward`). A real reward above it is an error."""
    num_virtual: int = 1
    """m, how many virtual r_max samples join each group's statistics (`algorithm.add_max_reward_num`; the
    paper reports m > 1 degrades results)."""
    eps: float = 1e-6
    """Added to the std over G + m values, outside the root (the official code's epsilon)."""
    unbiased_std: bool = True
    """Bessel-corrected std over the G + m values (divide by G + m - 1), as the code's `torch.std` and the
    paper's Figure 3; False: population std (divide by G + m), as the paper's Eq. 6 is printed."""
    single_sample: Literal["raw_reward", "calibrated"] = "raw_reward"
    """A group of one sample: "raw_reward" returns A = r (the official code sets mean 0, std 1 and adds no
    virtual sample); "calibrated" applies the formula with the virtual sample(s) (n = 1 + m values)."""

    def __post_init__(self) -> None:
        _check_eps("ngrpo", eps=self.eps)
        if not math.isfinite(self.r_max):
            raise ValueError(f"ngrpo: r_max must be finite, got {self.r_max}")
        if not (isinstance(self.num_virtual, int) and self.num_virtual >= 1):
            raise ValueError(f"ngrpo: num_virtual must be an int >= 1, got {self.num_virtual!r}")
        if self.single_sample not in ("raw_reward", "calibrated"):
            raise ValueError(f"ngrpo: single_sample must be 'raw_reward' or 'calibrated', got {self.single_sample!r}")


@register_estimator("ngrpo", NGRPOConfig)
def ngrpo(rewards: torch.Tensor, outcomes: torch.Tensor | None, config: NGRPOConfig):
    """NGRPO (arXiv:2509.18851, Eqs. 5-6): add m virtual samples of reward r_max to each group,
    mu' = mean(R'), sigma' = std(R') over the G + m values, A_i = (r_i - mu') / (sigma' + eps) for the G
    real samples only. Sum of a group's advantages is -m (r_max - mu') / (sigma' + eps) <= 0."""
    P, G = rewards.shape
    r_max = in_reward_dtype(config.r_max, rewards)  # r_max as the rewards' dtype stores it
    above = rewards > r_max  # [P, G]
    if bool(above.any()):
        p = int(above.any(dim=-1).nonzero()[0])
        raise GroupInputError(
            f"ngrpo: group {p} has reward(s) above r_max={config.r_max}: {rewards[p].tolist()}; r_max must be "
            f"the task's maximum achievable reward (NGRPOConfig.r_max)"
        )
    if G == 1 and config.single_sample == "raw_reward":
        return _out(rewards.double(), rewards), _keep_all(rewards)  # official code: mean 0, std 1
    m = config.num_virtual
    n = G + m  # values in R'
    d = rewards.double() - r_max  # [P, G]  shifted rewards; every virtual sample has d = 0
    mu_d = d.sum(dim=-1, keepdim=True) / n  # [P, 1]  mean(R') - r_max
    ss = (d - mu_d).pow(2).sum(dim=-1, keepdim=True) + m * mu_d.pow(2)  # [P, 1]  squared deviations of R'
    sigma = (ss / (n - 1 if config.unbiased_std else n)).sqrt()  # [P, 1]  std(R')
    A = (d - mu_d) / (sigma + config.eps)  # [P, G]
    return _out(A, rewards), _keep_all(rewards)


# ---------------------------------------------------------------------------------------------------------
# UCPO.
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UCPOConfig:
    """UCPO (arXiv:2601.22648): ternary advantage decoupling + dynamic uncertainty reward adjustment."""

    w: float = 1.0
    """Weight of the uncertainty-suppression term of gamma(q). The paper's value is unknown; 1.0 is the
    value UCPO's worked examples use."""
    eps: float = 1e-6
    """Added to the deterministic channel's std, outside the root (value not published; verl's 1e-6)."""
    gamma_eps: float = 1e-6
    """The eps inside gamma(q)'s two ratios (value not published). Under the non-ternary filter both
    denominators are >= 1/G, so it moves gamma by at most ~1e-6 * G."""
    unbiased_std: bool = True
    """Bessel-corrected std over the deterministic samples (not published; assumed like verl's GRPO)."""
    det_rewards: Literal["outcomes", "rewards"] = "outcomes"
    """Deterministic-channel rewards: "outcomes" uses 1 (correct) / 0 (wrong, invalid) as the paper's
    ternary setting implies; "rewards" uses the given rewards of the correct/wrong samples (e.g. with a
    format bonus). A_right is then the mean advantage of the correct samples."""

    def __post_init__(self) -> None:
        _check_eps("ucpo", eps=self.eps, gamma_eps=self.gamma_eps)
        if not (math.isfinite(self.w) and self.w >= 0):
            raise ValueError(f"ucpo: w must be a finite number >= 0, got {self.w}")
        if self.det_rewards not in ("outcomes", "rewards"):
            raise ValueError(f"ucpo: det_rewards must be 'outcomes' or 'rewards', got {self.det_rewards!r}")


def ucpo_gamma(P_r: torch.Tensor, P_w: torch.Tensor, P_u: torch.Tensor, w: float, eps: float) -> torch.Tensor:
    """UCPO's dynamic uncertainty reward (DURA), per group; P_r + P_w + P_u = 1 are the group's fractions of
    correct, wrong and uncertain rollouts:

        gamma(q) = P_w / (P_u + P_w + eps) * (1 - P_u)  -  w * P_r / (P_r + P_w + eps) * P_u
                   \\___ uncertainty gain ___________/     \\___ uncertainty suppression ______/
    """
    gain = P_w / (P_u + P_w + eps) * (1 - P_u)
    suppression = w * P_r / (P_r + P_w + eps) * P_u
    return gain - suppression


@register_estimator("ucpo", UCPOConfig, needs_outcomes=True)
def ucpo(rewards: torch.Tensor, outcomes: torch.Tensor | None, config: UCPOConfig):
    """UCPO (arXiv:2601.22648): split each group into S_det = correct + wrong (invalid counts as wrong) and
    S_unc = uncertain.
      deterministic channel, i in S_det:  A_i = (r_i - mean(r_det)) / (std(r_det) + eps)
      uncertainty channel,   i in S_unc:  A_i = gamma(q) * A_right,   A_right = mean A_i over correct i
    Uncertain samples never enter mean(r_det) / std(r_det). A group without a correct or without a wrong
    sample has no deterministic baseline: keep = False, advantages 0 (the paper's non-ternary filter)."""
    P, G = rewards.shape
    is_r = outcomes == int(Outcome.CORRECT)  # [P, G]
    is_u = outcomes == int(Outcome.UNCERTAIN)  # [P, G]
    is_det = ~is_u  # [P, G]  correct, wrong, invalid
    n_r = is_r.sum(dim=-1, keepdim=True).double()  # [P, 1]
    n_u = is_u.sum(dim=-1, keepdim=True).double()  # [P, 1]
    n_det = G - n_u  # [P, 1]
    n_w = n_det - n_r  # [P, 1]  wrong + invalid
    keep = ((n_r >= 1) & (n_w >= 1)).squeeze(-1)  # [P]

    r = is_r.double() if config.det_rewards == "outcomes" else rewards.double()  # [P, G]
    r_det = torch.where(is_det, r, 0.0)  # [P, G]
    mu = r_det.sum(dim=-1, keepdim=True) / n_det.clamp(min=1)  # [P, 1]
    dev = torch.where(is_det, r - mu, 0.0)  # [P, G]
    ddof = 1 if config.unbiased_std else 0
    sigma = (dev.pow(2).sum(dim=-1, keepdim=True) / (n_det - ddof).clamp(min=1)).sqrt()  # [P, 1]
    A_det = dev / (sigma + config.eps)  # [P, G]
    A_right = torch.where(is_r, A_det, 0.0).sum(dim=-1, keepdim=True) / n_r.clamp(min=1)  # [P, 1]

    gamma = ucpo_gamma(n_r / G, n_w / G, n_u / G, config.w, config.gamma_eps)  # [P, 1]
    A = torch.where(is_u, gamma * A_right, A_det)  # [P, G]
    A = torch.where(keep.unsqueeze(-1), A, 0.0)  # [P, G]
    return _out(A, rewards), keep
