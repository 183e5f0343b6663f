"""Policy loss: PPO's clipped surrogate with decoupled clip bounds, dual clip, loss aggregation modes,
a KL term against a reference policy (as a loss, or as a per-token reward penalty), and an entropy bonus.

Per token t of response i, with rho = pi_theta / pi_old = exp(log_probs - old_log_probs):

    surr1 = rho * A                     surr2 = clip(rho, 1 - eps_low, 1 + eps_high) * A
    l_it  = -min(surr1, surr2)                                      PPO, arXiv:1707.06347
    l_it  = -max(min(surr1, surr2), c * A)    where A < 0           dual clip (c > 1), arXiv:1912.09729

For A > 0 only the upper bound 1 + eps_high can bind, for A < 0 only 1 - eps_low, so separate bounds are
NGRPO's asymmetric clipping (arXiv:2509.18851 Eq. 8: eps_pos = eps_high = 0.24, eps_neg = eps_low = 0.16)
and DAPO's clip-higher (arXiv:2503.14476: 0.2 / 0.28). Aggregation over the [B, T] token losses l, mask m:

    token-mean               sum_it m l / N_tokens                         DAPO; NGRPO code; OpenRLHF default
    seq-mean-token-mean      (1/S) sum_i [ sum_t m l / sum_t m ]           GRPO paper; OpenRLHF's other mode
    seq-mean-token-sum-norm  (1/S) sum_i [ sum_t m l / L ]                 Dr.GRPO, arXiv:2503.20783

    loss = agg(l) + kl_coef * agg(KL_t) [kl_mode="loss"] - entropy_coef * agg(H_t)

KL estimators of KL(pi_theta || pi_ref) per token, log_ratio = log pi_theta - log pi_ref (Schulman,
http://joschu.net/blog/kl-approx.html):  k1 = log_ratio,  k2 = log_ratio^2 / 2,
k3 = exp(-log_ratio) - 1 + log_ratio  (GRPO's choice, verl's low_var_kl).

Convention choices (each matches OpenRLHF 0.11.2 `openrlhf/models/loss.py::PolicyLoss` and
`openrlhf/models/utils.py::compute_approx_kl`, which the tests compare against):
* the log ratio is clamped to [-20, 20] before exp; KL values are clamped to [-10, 10], k3's log ratio to
  >= -10 before exp (bounded values, zero gradient past the bounds);
* N_tokens and S default to the micro-batch's own counts (S counts sequences with >= 1 unmasked token);
  pass the optimizer step's global counts (`num_tokens`, `num_sequences`) when accumulating gradients
  over micro-batches so the step's loss is a true global mean, like OpenRLHF's `batch_num_tokens`;
* seq-mean-token-sum-norm's L is `max_response_length` (a constant across training, as Dr.GRPO asks), or
  the mask width when unset (verl's fallback). verl's `agg_loss` divides by L only, not by S; the 1/S here
  makes the value a mean over sequences (the mode's name) and differs from verl by a constant factor for a
  fixed batch size;
* masked positions never reach the loss (`torch.where`, so padding log-probs of -inf cannot poison it);
* stats are token means over the micro-batch: `clip_frac` counts tokens where surr2 < surr1 (OpenRLHF's
  `clip_ratio`), split by the advantage's sign into `clip_frac_pos` (upper bound binds, fraction of A > 0
  tokens) and `clip_frac_neg` (lower bound binds, fraction of A < 0 tokens); `approx_kl` is
  mean(old_log_probs - log_probs), OpenRLHF's `ppo_kl`;
* "KL as a reward penalty" (kl_mode="reward") is applied to advantages before the loss by
  `kl_penalized_advantages`, as OpenRLHF's `compute_reward` + cumulative returns (gamma = 1) do;
  `whiten_token_advantages` is OpenRLHF's token-weighted whitening that follows it for reinforce_baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal

import torch

LOSS_AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm")
KL_ESTIMATORS = ("k1", "k2", "k3")
LOG_RATIO_CLAMP = 20.0  # OpenRLHF PolicyLoss
KL_VALUE_CLAMP = 10.0  # OpenRLHF compute_approx_kl


@dataclass(frozen=True)
class PolicyLossConfig:
    """The clipped-surrogate loss and its extra terms."""

    eps_low: float = 0.2
    """Lower clip bound: rho >= 1 - eps_low binds for A < 0 (NGRPO 0.16, DAPO 0.2, PPO 0.2)."""
    eps_high: float = 0.2
    """Upper clip bound: rho <= 1 + eps_high binds for A > 0 (NGRPO 0.24, DAPO 0.28, PPO 0.2)."""
    dual_clip: float | None = None
    """Dual-clip constant c > 1: for A < 0 the token loss is at most -c * A. None: off."""
    loss_agg_mode: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"] = "token-mean"
    """How token losses become one number; see the module docstring."""
    max_response_length: int | None = None
    """L in seq-mean-token-sum-norm (set it to the rollout's max new tokens); None: the mask width."""
    kl_mode: Literal["none", "loss", "reward"] = "none"
    """KL to the reference policy: "loss" adds kl_coef * agg(KL) here; "reward" subtracts kl_coef * KL from
    the per-token rewards (`kl_penalized_advantages`); "none": no reference model is needed."""
    kl_coef: float = 0.0
    """beta, the KL weight (GRPO 0.04, NGRPO's GRPO baseline 0.001, NGRPO itself 0)."""
    kl_estimator: Literal["k1", "k2", "k3"] = "k3"
    """Which per-token KL estimate (k3: GRPO's unbiased non-negative estimator)."""
    entropy_coef: float = 0.0
    """Entropy bonus weight: loss -= entropy_coef * agg(H) (NGRPO's verl default 0.001)."""

    def __post_init__(self) -> None:
        for name in ("eps_low", "eps_high", "kl_coef", "entropy_coef"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"policy loss: {name} must be a finite number >= 0, got {value}")
        if self.eps_low >= 1:
            raise ValueError(f"policy loss: eps_low must be < 1 (the lower bound 1 - eps_low > 0), got {self.eps_low}")
        if self.dual_clip is not None and not self.dual_clip > 1:
            raise ValueError(f"policy loss: dual_clip must be > 1 or None, got {self.dual_clip}")
        if self.loss_agg_mode not in LOSS_AGG_MODES:
            raise ValueError(f"policy loss: loss_agg_mode {self.loss_agg_mode!r} is not one of {LOSS_AGG_MODES}")
        if self.kl_estimator not in KL_ESTIMATORS:
            raise ValueError(f"policy loss: kl_estimator {self.kl_estimator!r} is not one of {KL_ESTIMATORS}")
        if self.kl_mode not in ("none", "loss", "reward"):
            raise ValueError(f"policy loss: kl_mode must be 'none', 'loss' or 'reward', got {self.kl_mode!r}")
        if self.max_response_length is not None and self.max_response_length < 1:
            raise ValueError(f"policy loss: max_response_length must be >= 1, got {self.max_response_length}")


@dataclass(frozen=True)
class PolicyLossStats:
    """Detached scalars describing one loss evaluation (token means over the micro-batch)."""

    pg_loss: torch.Tensor
    clip_frac: torch.Tensor
    clip_frac_pos: torch.Tensor
    clip_frac_neg: torch.Tensor
    dual_clip_frac: torch.Tensor
    approx_kl: torch.Tensor
    kl_loss: torch.Tensor
    entropy: torch.Tensor

    def metrics(self) -> dict[str, float]:
        """`train/` metrics."""
        return {f"train/{f.name}": float(getattr(self, f.name)) for f in fields(self)}


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x over mask (0 when the mask is empty)."""
    return torch.where(mask, x, 0.0).sum() / mask.sum().clamp(min=1)


def kl_estimate(log_probs: torch.Tensor, ref_log_probs: torch.Tensor, estimator: str = "k3") -> torch.Tensor:
    """Per-token estimate of KL(pi_theta || pi_ref) from sampled-token log-probs, [B, T] -> [B, T]."""
    log_ratio = log_probs.float() - ref_log_probs.float()  # [B, T]
    if estimator == "k1":
        kl = log_ratio
    elif estimator == "k2":
        kl = log_ratio.pow(2) / 2
    elif estimator == "k3":
        log_ratio = log_ratio.clamp(min=-KL_VALUE_CLAMP)  # exp(10) already exceeds the value clamp
        kl = (-log_ratio).exp() - 1 + log_ratio
    else:
        raise ValueError(f"unknown KL estimator {estimator!r}; valid: {KL_ESTIMATORS}")
    return kl.clamp(min=-KL_VALUE_CLAMP, max=KL_VALUE_CLAMP)  # [B, T]


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of softmax(logits) over the last axis: H = logsumexp(z) - sum softmax(z) * z, [B, T, V] -> [B, T]."""
    logits = logits.float()
    return torch.logsumexp(logits, dim=-1) - (logits.softmax(dim=-1) * logits).sum(dim=-1)


def aggregate(
    loss: torch.Tensor,
    action_mask: torch.Tensor,
    mode: str = "token-mean",
    *,
    num_tokens: float | None = None,
    num_sequences: float | None = None,
    max_response_length: int | None = None,
) -> torch.Tensor:
    """Reduce token losses [B, T] to a scalar (see the module docstring for the three modes)."""
    mask = action_mask.bool()  # [B, T]
    loss = torch.where(mask, loss, 0.0)  # [B, T]
    tokens_per_seq = mask.sum(dim=-1)  # [B]
    if mode == "token-mean":
        N = mask.sum().clamp(min=1) if num_tokens is None else num_tokens
        return loss.sum() / N
    S = (tokens_per_seq > 0).sum().clamp(min=1) if num_sequences is None else num_sequences
    if mode == "seq-mean-token-mean":
        return (loss.sum(dim=-1) / tokens_per_seq.clamp(min=1)).sum() / S
    if mode == "seq-mean-token-sum-norm":
        L = mask.shape[-1] if max_response_length is None else max_response_length
        return (loss.sum(dim=-1) / L).sum() / S
    raise ValueError(f"unknown loss_agg_mode {mode!r}; valid: {LOSS_AGG_MODES}")


def clipped_surrogate(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    eps_low: float,
    eps_high: float,
    dual_clip: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token losses l [B, T] of the clipped surrogate, plus the masks `clipped` (surr2 < surr1) and
    `dual_clipped` (the dual bound c * A binds) for the stats."""
    log_ratio = (log_probs - old_log_probs).clamp(min=-LOG_RATIO_CLAMP, max=LOG_RATIO_CLAMP)  # [B, T]
    rho = log_ratio.exp()  # [B, T]
    surr1 = rho * advantages  # [B, T]
    surr2 = rho.clamp(1 - eps_low, 1 + eps_high) * advantages  # [B, T]
    clipped = surr2 < surr1  # [B, T]
    surrogate = torch.min(surr1, surr2)  # [B, T]
    dual_clipped = torch.zeros_like(clipped)
    if dual_clip is not None:
        dual_bound = dual_clip * advantages  # [B, T]
        dual_clipped = (advantages < 0) & (dual_bound > surrogate)
        surrogate = torch.where(advantages < 0, torch.max(surrogate, dual_bound), surrogate)
    return -surrogate, clipped, dual_clipped


def _token_advantages(advantages: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """[B] (one per response) or [B, T] (per token) -> [B, T]."""
    if advantages.dim() == 1 and advantages.shape[0] == like.shape[0]:
        return advantages.unsqueeze(-1).expand_as(like)
    if advantages.shape != like.shape:
        raise ValueError(
            f"policy loss: advantages must have shape [B] or [B, T] = {tuple(like.shape)}, "
            f"got {tuple(advantages.shape)}"
        )
    return advantages


def policy_loss(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    action_mask: torch.Tensor,
    config: PolicyLossConfig,
    *,
    ref_log_probs: torch.Tensor | None = None,
    entropy: torch.Tensor | None = None,
    num_tokens: float | None = None,
    num_sequences: float | None = None,
) -> tuple[torch.Tensor, PolicyLossStats]:
    """The PPO-style loss for one micro-batch.

    log_probs      [B, T]  log pi_theta of the sampled tokens (carries the gradient)
    old_log_probs  [B, T]  log pi_old (the rollout policy), no gradient
    advantages     [B] or [B, T]
    action_mask    [B, T]  True on response tokens that are trained
    ref_log_probs  [B, T]  log pi_ref, needed when kl_mode == "loss" and kl_coef > 0
    entropy        [B, T]  per-token policy entropy (e.g. `entropy_from_logits`), needed when entropy_coef > 0
    """
    if log_probs.shape != old_log_probs.shape or log_probs.shape != action_mask.shape:
        raise ValueError(
            f"policy loss: log_probs {tuple(log_probs.shape)}, old_log_probs {tuple(old_log_probs.shape)} and "
            f"action_mask {tuple(action_mask.shape)} must have the same [B, T] shape"
        )
    mask = action_mask.bool()  # [B, T]
    A = _token_advantages(advantages, log_probs).to(log_probs.dtype)  # [B, T]
    agg = dict(
        mode=config.loss_agg_mode,
        num_tokens=num_tokens,
        num_sequences=num_sequences,
        max_response_length=config.max_response_length,
    )

    token_loss, clipped, dual_clipped = clipped_surrogate(
        log_probs, old_log_probs.detach(), A.detach(), config.eps_low, config.eps_high, config.dual_clip
    )
    pg_loss = aggregate(token_loss, mask, **agg)
    loss = pg_loss

    kl_loss = torch.zeros((), device=log_probs.device)
    if config.kl_mode == "loss" and config.kl_coef > 0:
        if ref_log_probs is None:
            raise ValueError("policy loss: kl_mode='loss' with kl_coef > 0 needs ref_log_probs")
        kl_loss = aggregate(kl_estimate(log_probs, ref_log_probs.detach(), config.kl_estimator), mask, **agg)
        loss = loss + config.kl_coef * kl_loss

    entropy_mean = torch.zeros((), device=log_probs.device)
    if entropy is not None:
        entropy_mean = aggregate(entropy, mask, **agg)
        if config.entropy_coef > 0:
            loss = loss - config.entropy_coef * entropy_mean
    elif config.entropy_coef > 0:
        raise ValueError("policy loss: entropy_coef > 0 needs the per-token entropy")

    with torch.no_grad():
        stats = PolicyLossStats(
            pg_loss=pg_loss.detach(),
            clip_frac=_masked_mean(clipped.float(), mask),
            clip_frac_pos=_masked_mean(clipped.float(), mask & (A > 0)),
            clip_frac_neg=_masked_mean(clipped.float(), mask & (A < 0)),
            dual_clip_frac=_masked_mean(dual_clipped.float(), mask),
            approx_kl=_masked_mean(old_log_probs - log_probs.detach(), mask),
            kl_loss=kl_loss.detach(),
            entropy=entropy_mean.detach(),
        )
    return loss, stats


def kl_penalized_advantages(
    advantages: torch.Tensor,
    kl: torch.Tensor,
    action_mask: torch.Tensor,
    kl_coef: float,
    clip_range: tuple[float, float] | None = None,
) -> torch.Tensor:
    """KL as a reward penalty (kl_mode="reward"): per-token rewards are -kl_coef * KL_t on every response
    token plus the response's advantage on its last token; the token advantage is the reward-to-go
    (gamma = 1):  A_t = A * [t <= last] - kl_coef * sum_{t' >= t} m_t' KL_t'.   [B], [B, T] -> [B, T]

    `kl` is the rollout-time estimate (old policy vs reference, `kl_estimate(old_log_probs, ref_log_probs)`),
    as OpenRLHF's `compute_reward` + `get_cumulative_returns` use it; `clip_range` clamps the scalar
    advantage first, as OpenRLHF's --reward.clip_range (default (-10, 10)) does."""
    mask = action_mask.bool()  # [B, T]
    T = mask.shape[-1]
    if clip_range is not None:
        advantages = advantages.clamp(min=clip_range[0], max=clip_range[1])  # [B]
    last = T - 1 - mask.long().flip(-1).argmax(dim=-1, keepdim=True)  # [B, 1]  last response token
    rewards = torch.where(mask, -max(kl_coef, 0.0) * kl.float(), 0.0)  # [B, T]
    rewards = rewards.scatter_add(-1, last, advantages.float().unsqueeze(-1) * mask.any(-1, keepdim=True))  # [B, T]
    return rewards.flip(-1).cumsum(-1).flip(-1)  # [B, T]  reward-to-go


def whiten_token_advantages(
    advantages: torch.Tensor, action_mask: torch.Tensor, var_eps: float = 1e-8, divide_by_std: bool = True
) -> torch.Tensor:
    """Whiten token advantages over every response token of the batch, each token weighted equally:
    A <- (A - mean) * rsqrt(max(var_pop, var_eps)).   [B, T] -> [B, T]

    OpenRLHF applies this after the KL reward penalty for reinforce_baseline (LMM-R1's FRE and MGT runs):
    estimator `reinforce_baseline` with whiten=False -> `kl_penalized_advantages` -> this reproduces its
    order exactly, long responses weighing more. Masked positions come out shifted, not zeroed (the loss
    never reads them)."""
    mask = action_mask.bool()  # [B, T]
    A = advantages.float()  # [B, T]
    n = mask.sum().clamp(min=1)
    mean = torch.where(mask, A, 0.0).sum() / n
    if not divide_by_std:
        return A - mean
    var = torch.where(mask, (A - mean).pow(2), 0.0).sum() / n
    return (A - mean) * var.clamp(min=var_eps).rsqrt()
