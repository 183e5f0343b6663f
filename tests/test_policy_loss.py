"""Policy loss: pinned numbers, the paper's piecewise asymmetric clip, and the real OpenRLHF 0.11.2
`PolicyLoss`, `compute_approx_kl` and reward-penalty path (forward values and gradients)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmmr1.algorithms import (
    PolicyLossConfig,
    aggregate,
    entropy_from_logits,
    kl_estimate,
    kl_penalized_advantages,
    policy_loss,
)


def random_batch(seed: int, B: int = 6, T: int = 9, spread: float = 0.3):
    """log_probs (leaf, requires grad), old_log_probs, per-sequence advantages [B], right-padded mask with
    one fully masked row."""
    gen = torch.Generator().manual_seed(seed)
    old = torch.randn(B, T, generator=gen) * 0.5 - 2.0  # [B, T]
    log_probs = (old + torch.randn(B, T, generator=gen) * spread).requires_grad_(True)  # rho = e^N(0, spread^2)
    advantages = torch.randn(B, generator=gen)  # [B]
    lengths = torch.randint(1, T + 1, (B,), generator=gen)
    lengths[-1] = 0  # an empty response
    mask = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)  # [B, T]
    return log_probs, old, advantages, mask


# ---------------------------------------------------------------------------------------------------------
# Pinned numbers.
# ---------------------------------------------------------------------------------------------------------


def test_clipped_surrogate_pinned_numbers() -> None:
    # One token each, NGRPO bounds eps_low = 0.16, eps_high = 0.24, token-mean over 1 token:
    #   rho 1.5, A = +1: min(1.5, 1.24) = 1.24           -> loss -1.24 (clipped, upper bound)
    #   rho 0.5, A = -1: min(-0.5, -0.84) = -0.84        -> loss  0.84 (clipped, lower bound)
    #   rho 0.5, A = +1: min(0.5, 0.84) = 0.5            -> loss -0.5  (not clipped: A > 0 ignores the lower bound)
    #   rho 1.5, A = -1: min(-1.5, -1.24) = -1.5         -> loss  1.5  (not clipped: A < 0 ignores the upper bound)
    config = PolicyLossConfig(eps_low=0.16, eps_high=0.24)
    rho = torch.tensor([[1.5], [0.5], [0.5], [1.5]])
    A = torch.tensor([1.0, -1.0, 1.0, -1.0])
    expected = [-1.24, 0.84, -0.5, 1.5]
    for i in range(4):
        one = slice(i, i + 1)
        loss, stats = policy_loss(rho[one].log(), torch.zeros(1, 1), A[one], torch.ones(1, 1, dtype=torch.bool), config)
        torch.testing.assert_close(loss, torch.tensor(expected[i]))
    # all four at once, token-mean: (-1.24 + 0.84 - 0.5 + 1.5) / 4 = 0.15; clip fractions: 2 of 4 tokens;
    # of the two A > 0 tokens one hits the upper bound, of the two A < 0 tokens one hits the lower bound
    loss, stats = policy_loss(rho.log(), torch.zeros(4, 1), A, torch.ones(4, 1, dtype=torch.bool), config)
    torch.testing.assert_close(loss, torch.tensor(0.15))
    assert (stats.clip_frac.item(), stats.clip_frac_pos.item(), stats.clip_frac_neg.item()) == (0.5, 0.5, 0.5)


def test_dual_clip_pinned_numbers() -> None:
    # rho 5, A = -1, c = 3: min(-5, -1.2) = -5, then max(-5, 3 * -1) = -3 -> loss 3 (dual bound binds)
    # rho 5, A = +1: min(5, 1.2) = 1.2 -> loss -1.2 (dual clip applies to A < 0 only)
    config = PolicyLossConfig(dual_clip=3.0)
    log_probs = torch.log(torch.tensor([[5.0], [5.0]]))
    mask = torch.ones(2, 1, dtype=torch.bool)
    loss, stats = policy_loss(log_probs, torch.zeros(2, 1), torch.tensor([-1.0, 1.0]), mask, config)
    torch.testing.assert_close(loss, torch.tensor((3.0 - 1.2) / 2))
    assert stats.dual_clip_frac.item() == 0.5


def test_aggregation_modes_pinned_numbers() -> None:
    loss = torch.tensor([[1.0, 2.0, 3.0], [4.0, 99.0, 99.0]])  # the 99s are masked out
    mask = torch.tensor([[True, True, True], [True, False, False]])
    # token-mean: (1 + 2 + 3 + 4) / 4 = 2.5
    assert aggregate(loss, mask, "token-mean").item() == 2.5
    # seq-mean-token-mean: (6/3 + 4/1) / 2 = 3
    assert aggregate(loss, mask, "seq-mean-token-mean").item() == 3.0
    # seq-mean-token-sum-norm, L = mask width 3: (6/3 + 4/3) / 2 = 5/3; L = 10: (0.6 + 0.4) / 2 = 0.5
    torch.testing.assert_close(aggregate(loss, mask, "seq-mean-token-sum-norm"), torch.tensor(5 / 3))
    sum_norm_10 = aggregate(loss, mask, "seq-mean-token-sum-norm", max_response_length=10)
    torch.testing.assert_close(sum_norm_10, torch.tensor(0.5))
    # global normalisers for gradient accumulation: token-mean over 8 tokens of the step = 10 / 8
    assert aggregate(loss, mask, "token-mean", num_tokens=8).item() == 1.25
    assert aggregate(loss, mask, "seq-mean-token-mean", num_sequences=4).item() == 1.5


def test_kl_estimators_pinned_numbers() -> None:
    # log_ratio = log pi - log pi_ref = 0.5:  k1 = 0.5, k2 = 0.125, k3 = e^-0.5 - 1 + 0.5 = 0.106531
    lp, ref = torch.tensor([[0.0]]), torch.tensor([[-0.5]])
    assert kl_estimate(lp, ref, "k1").item() == 0.5
    assert kl_estimate(lp, ref, "k2").item() == 0.125
    torch.testing.assert_close(kl_estimate(lp, ref, "k3"), torch.tensor([[0.106531]]))


def test_kl_loss_and_entropy_bonus_enter_the_loss() -> None:
    log_probs, old, A, mask = random_batch(0)
    ref = old - 0.1
    entropy = torch.rand(*old.shape)
    base = PolicyLossConfig()
    full = PolicyLossConfig(kl_mode="loss", kl_coef=0.04, kl_estimator="k3", entropy_coef=0.001)
    pg, _ = policy_loss(log_probs, old, A, mask, base)
    loss, stats = policy_loss(log_probs, old, A, mask, full, ref_log_probs=ref, entropy=entropy)
    kl = aggregate(kl_estimate(log_probs, ref, "k3"), mask)
    H = aggregate(entropy, mask)
    torch.testing.assert_close(loss, pg + 0.04 * kl - 0.001 * H)
    torch.testing.assert_close(stats.kl_loss, kl.detach())
    assert stats.kl_loss > 0 and stats.entropy > 0
    with pytest.raises(ValueError, match="needs ref_log_probs"):
        policy_loss(log_probs, old, A, mask, full, entropy=entropy)
    with pytest.raises(ValueError, match="needs the per-token entropy"):
        policy_loss(log_probs, old, A, mask, full, ref_log_probs=ref)


def test_entropy_from_logits_matches_categorical() -> None:
    logits = torch.randn(3, 4, 11, generator=torch.Generator().manual_seed(1)) * 3
    expected = torch.distributions.Categorical(logits=logits).entropy()
    torch.testing.assert_close(entropy_from_logits(logits), expected)


# ---------------------------------------------------------------------------------------------------------
# Invariants.
# ---------------------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    eps_low=st.floats(0.05, 0.5),
    eps_high=st.floats(0.05, 0.5),
    seed=st.integers(0, 2**31 - 1),
)
def test_matches_the_papers_piecewise_asymmetric_clip(eps_low: float, eps_high: float, seed: int) -> None:
    """NGRPO's asymmetric clip per advantage sign (Eq. 8, as an objective to maximise):
        A >= 0: min(rho A, (1 + eps_pos) A)        A < 0: min(rho A, (1 - eps_neg) A)
    (research/algorithms.md §1.3 prints max(...) for A < 0, which would leave rho -> 0 unbounded and clip
    rho -> inf instead; the official code's decoupled clip, which the note says it equals, is the min form.)"""
    log_probs, old, A, mask = random_batch(seed, spread=0.6)
    mask = torch.ones_like(mask)
    rho = (log_probs - old).exp().detach()  # [B, T]
    A_t = A.unsqueeze(-1).expand_as(rho)  # [B, T]
    objective = torch.where(
        A_t >= 0, torch.min(rho * A_t, (1 + eps_high) * A_t), torch.min(rho * A_t, (1 - eps_low) * A_t)
    )
    loss, _ = policy_loss(log_probs, old, A, mask, PolicyLossConfig(eps_low=eps_low, eps_high=eps_high))
    torch.testing.assert_close(loss, -objective.mean(), atol=1e-6, rtol=1e-6)


def test_gradient_is_zero_exactly_where_the_clip_binds() -> None:
    # rho = 1.5 > 1 + 0.24 with A > 0 and rho = 0.5 < 1 - 0.16 with A < 0: clipped, zero gradient.
    # rho = 0.5 with A > 0 and rho = 1.5 with A < 0: the surrogate is rho * A, gradient d(-rho A)/d log pi = -rho A
    log_probs = torch.log(torch.tensor([[1.5], [0.5], [0.5], [1.5]])).requires_grad_(True)
    A = torch.tensor([1.0, -1.0, 1.0, -1.0])
    loss, _ = policy_loss(log_probs, torch.zeros(4, 1), A, torch.ones(4, 1, dtype=torch.bool),
                          PolicyLossConfig(eps_low=0.16, eps_high=0.24))  # fmt: skip
    loss.backward()
    # token-mean over 4 tokens: gradients [0, 0, -0.5/4, 1.5/4]
    torch.testing.assert_close(log_probs.grad, torch.tensor([[0.0], [0.0], [-0.125], [0.375]]))


def test_masked_positions_never_reach_the_loss() -> None:
    log_probs, old, A, mask = random_batch(2)
    loss, stats = policy_loss(log_probs, old, A, mask, PolicyLossConfig())
    poisoned = log_probs.detach().masked_fill(~mask, float("-inf")).requires_grad_(True)
    old_poisoned = old.masked_fill(~mask, float("nan"))
    loss2, stats2 = policy_loss(poisoned, old_poisoned, A, mask, PolicyLossConfig())
    torch.testing.assert_close(loss2, loss.detach())
    loss2.backward()
    assert torch.isfinite(poisoned.grad).all()
    torch.testing.assert_close(stats2.approx_kl, stats.approx_kl)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="dual_clip must be > 1"):
        PolicyLossConfig(dual_clip=0.5)
    with pytest.raises(ValueError, match="loss_agg_mode 'seq-mean' is not one of"):
        PolicyLossConfig(loss_agg_mode="seq-mean")
    with pytest.raises(ValueError, match="eps_low must be < 1"):
        PolicyLossConfig(eps_low=1.0)
    with pytest.raises(ValueError, match="kl_estimator 'k4' is not one of"):
        PolicyLossConfig(kl_estimator="k4")


# ---------------------------------------------------------------------------------------------------------
# Against the real OpenRLHF 0.11.2.
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("eps_low,eps_high", [(0.16, 0.24), (0.2, 0.28), (0.2, 0.2)], ids=["ngrpo", "dapo", "ppo"])
@pytest.mark.parametrize("dual_clip", [None, 1.5])  # c = 1.5 binds for rho > 1.5 on A < 0 tokens
@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean"])
@pytest.mark.parametrize("per_token_advantages", [False, True])
def test_matches_openrlhf_policy_loss(openrlhf_cpu, eps_low, eps_high, dual_clip, mode, per_token_advantages) -> None:
    from openrlhf.models.loss import PolicyLoss

    theirs_fn = PolicyLoss(clip_eps_low=eps_low, clip_eps_high=eps_high, dual_clip=dual_clip,
                           token_level_loss=mode == "token-mean")  # fmt: skip
    config = PolicyLossConfig(eps_low=eps_low, eps_high=eps_high, dual_clip=dual_clip, loss_agg_mode=mode)
    for seed in range(4):
        log_probs, old, A, mask = random_batch(seed, B=8, T=12, spread=0.4)
        if per_token_advantages:
            A = torch.randn(*old.shape, generator=torch.Generator().manual_seed(100 + seed))  # [B, T]
        A_t = A if per_token_advantages else A.unsqueeze(-1).expand_as(old)

        ours, stats = policy_loss(log_probs, old, A, mask, config)
        (grad_ours,) = torch.autograd.grad(ours, log_probs)
        theirs, clip_ratio, ppo_kl, vllm_kl, is_filter_ratio = theirs_fn(log_probs, old, A_t, action_mask=mask)
        (grad_theirs,) = torch.autograd.grad(theirs, log_probs)

        torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(grad_ours, grad_theirs, atol=1e-7, rtol=1e-6)
        torch.testing.assert_close(stats.clip_frac, clip_ratio)
        torch.testing.assert_close(stats.approx_kl, ppo_kl)
        assert vllm_kl is None and is_filter_ratio is None
        assert grad_ours.abs().sum() > 0
    assert stats.clip_frac > 0  # the random ratios do hit the clip bounds
    if dual_clip is not None:
        assert stats.dual_clip_frac > 0  # ... and the dual bound


@pytest.mark.parametrize("estimator", ["k1", "k2", "k3"])
def test_kl_estimate_matches_openrlhf_compute_approx_kl(openrlhf_cpu, estimator: str) -> None:
    from openrlhf.models.utils import compute_approx_kl

    gen = torch.Generator().manual_seed(3)
    ref = torch.randn(4, 50, generator=gen)
    log_probs = (ref + torch.randn(4, 50, generator=gen) * 6).requires_grad_(True)  # some |log ratio| > 10: clamps
    ours = kl_estimate(log_probs, ref, estimator)
    theirs = compute_approx_kl(log_probs, ref, kl_estimator=estimator)
    torch.testing.assert_close(ours, theirs)
    (g_ours,) = torch.autograd.grad(ours.sum(), log_probs)
    (g_theirs,) = torch.autograd.grad(theirs.sum(), log_probs)
    torch.testing.assert_close(g_ours, g_theirs)
    assert (ours.abs() == 10).any()  # the clamp is exercised


def test_kl_penalized_advantages_match_openrlhf_reward_path(openrlhf_cpu) -> None:
    from openrlhf.models.utils import compute_reward
    from openrlhf.trainer.ppo_utils.experience_maker import RemoteExperienceMaker

    gen = torch.Generator().manual_seed(4)
    B, T = 6, 10
    advantages = torch.randn(B, generator=gen)  # [B] group-shaped scalar per response
    kl = torch.rand(B, T, generator=gen)  # [B, T]
    mask = torch.rand(B, T, generator=gen) < 0.8  # holes, as multi-turn observation tokens
    mask[0] = False  # an empty response
    mask[1, -3:] = False  # right padding
    maker = object.__new__(RemoteExperienceMaker)
    shaped = compute_reward(advantages, 0.05, kl, action_mask=mask, reward_clip_range=None)
    theirs = maker.get_cumulative_returns(shaped, mask, 1.0)
    ours = kl_penalized_advantages(advantages, kl, mask, 0.05)
    torch.testing.assert_close(ours * mask, theirs * mask)
    # and without a penalty every response token carries exactly its response's advantage
    plain = kl_penalized_advantages(advantages, kl, mask, 0.0)
    first = mask.long().argmax(dim=-1)
    torch.testing.assert_close(plain[torch.arange(B), first][1:], advantages[1:])
