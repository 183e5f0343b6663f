"""Advantage estimators: pinned numbers from the papers' tables and worked examples, invariants, naive-loop and real
OpenRLHF 0.11.2 comparisons, property tests, and the bad-input errors."""

from __future__ import annotations

import math
import types

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmmr1.algorithms import (
    ESTIMATORS,
    GroupInputError,
    GroupNormConfig,
    NGRPOConfig,
    Outcome,
    ReinforceBaselineConfig,
    UCPOConfig,
    WReinforceConfig,
    as_groups,
    estimate_kept_groups,
    get_estimator,
    outcomes_to_tensor,
    ucpo_gamma,
)

C, W, U, I = (int(o) for o in (Outcome.CORRECT, Outcome.WRONG, Outcome.UNCERTAIN, Outcome.INVALID))


def binary_group(k: int, G: int = 8) -> torch.Tensor:
    """One group of G 0/1 rewards with the first k correct: [1, G]."""
    return torch.tensor([[1.0] * k + [0.0] * (G - k)])


# ---------------------------------------------------------------------------------------------------------
# NGRPO: the table of research/algorithms.md §1.2 (G = 8, r in {0, 1}, r_max = 1, m = 1, eps = 1e-6).
#
# Closed form, k correct of G, n = G + 1 values, mean m' = (k + 1) / (G + 1):
#   unbiased:   s^2 = (G + 1) m'(1 - m') / G     population: s^2 = m'(1 - m')
#   A+ = (1 - m') / s,  A- = -m' / s
# e.g. k = 1, unbiased: m' = 2/9, s^2 = 9 * (2/9)(7/9) / 8 = 7/36, s = 0.440959;
#   A+ = (7/9) / 0.440959 = 1.763834, A- = -(2/9) / 0.440959 = -0.503953.
# k = 0: m' = 1/9, s^2 = 9 * (1/9)(8/9) / 8 = 1/9, A- = -(1/9) / (1/3) = -1/3 = -1/sqrt(G + 1).
# ---------------------------------------------------------------------------------------------------------

NGRPO_TABLE = {  # k: (A+ code, A- code, A+ population, A- population); None where no such sample
    0: (None, -0.3333, None, -0.3536),
    1: (1.7638, -0.5040, 1.8708, -0.5345),
    2: (1.3333, -0.6667, 1.4142, -0.7071),
    3: (1.0541, -0.8433, 1.1180, -0.8944),
    4: (0.8433, -1.0541, 0.8944, -1.1180),
    5: (0.6667, -1.3333, 0.7071, -1.4142),
    6: (0.5040, -1.7638, 0.5345, -1.8708),
    7: (0.3333, -2.6667, 0.3536, -2.8284),
    8: (0.0000, None, 0.0000, None),
}


@pytest.mark.parametrize("unbiased_std", [True, False], ids=["code-unbiased", "eq6-population"])
@pytest.mark.parametrize("k", range(9))
def test_ngrpo_matches_research_table(k: int, unbiased_std: bool) -> None:
    A, keep = get_estimator("ngrpo")(binary_group(k), None, NGRPOConfig(unbiased_std=unbiased_std))
    a_pos, a_neg = NGRPO_TABLE[k][:2] if unbiased_std else NGRPO_TABLE[k][2:]
    expected = torch.tensor([[a_pos] * k + [a_neg] * (8 - k)])
    torch.testing.assert_close(A, expected, atol=1e-4, rtol=0)
    assert keep.tolist() == [True]


def test_ngrpo_default_is_the_codes_unbiased_std() -> None:
    A, _ = get_estimator("ngrpo")(binary_group(1))  # default config
    torch.testing.assert_close(A[0, 0], torch.tensor(1.7638), atol=1e-4, rtol=0)


@pytest.mark.parametrize("G", [2, 4, 8, 16, 64])
def test_ngrpo_all_wrong_group_is_minus_one_over_sqrt_g_plus_one(G: int) -> None:
    A, _ = get_estimator("ngrpo")(torch.zeros(1, G))
    # every value -1/sqrt(G+1) up to eps: -(1/(G+1)) / (1/sqrt(G+1) + 1e-6)
    torch.testing.assert_close(A, torch.full((1, G), -1 / math.sqrt(G + 1)), atol=1e-5, rtol=0)


@pytest.mark.parametrize("r_max,G", [(1.0, 8), (0.7, 7), (3.3, 5), (-2.0, 3)])
def test_ngrpo_all_correct_group_is_exactly_zero(r_max: float, G: int) -> None:
    A, _ = get_estimator("ngrpo")(torch.full((2, G), r_max), None, NGRPOConfig(r_max=r_max))
    assert torch.equal(A, torch.zeros(2, G))  # exact, not approximately


def official_ngrpo_loop(rewards: torch.Tensor, r_max: float, m: int, eps: float = 1e-6) -> torch.Tensor:
    """The official code's per-group loop (nangongrui-ngr/NGRPO compute_ngrpo_outcome_advantage), paraphrased."""
    out = torch.empty_like(rewards)
    for p, scores in enumerate(rewards):
        if len(scores) == 1:
            mean, std = torch.tensor(0.0), torch.tensor(1.0)
        else:
            values = torch.cat([scores, torch.tensor([r_max] * m)])
            mean, std = torch.mean(values), torch.std(values)
        for i, s in enumerate(scores):
            out[p, i] = (s - mean) / (std + eps)
    return out


@settings(max_examples=40, deadline=None)
@given(
    G=st.integers(1, 16),
    m=st.integers(1, 3),
    r_max=st.sampled_from([1.0, 2.5]),
    seed=st.integers(0, 2**31 - 1),
)
def test_ngrpo_matches_official_loop(G: int, m: int, r_max: float, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    rewards = torch.rand(5, G, generator=gen) * (r_max + 1) - 1  # [P, G] in [-1, r_max)
    rewards[0, :] = r_max  # an all-r_max group
    A, _ = get_estimator("ngrpo")(rewards, None, NGRPOConfig(r_max=r_max, num_virtual=m))
    torch.testing.assert_close(A, official_ngrpo_loop(rewards, r_max, m), atol=1e-5, rtol=1e-5)


@settings(max_examples=40, deadline=None)
@given(G=st.integers(1, 64), m=st.integers(1, 3), seed=st.integers(0, 2**31 - 1))
def test_ngrpo_group_sum_is_negative_unless_all_correct(G: int, m: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    rewards = (torch.rand(4, G, generator=gen) < 0.5).float()  # [P, G] 0/1
    rewards[0] = 1.0  # all correct
    rewards[1] = 0.0  # all wrong
    config = NGRPOConfig(num_virtual=m, single_sample="calibrated")
    A, _ = get_estimator("ngrpo")(rewards, None, config)
    sums = A.sum(dim=-1)  # [P]
    all_correct = (rewards == 1).all(dim=-1)
    assert sums[0] == 0
    assert bool((sums[~all_correct] < 0).all()), sums
    # identity: the real advantages sum to minus the m virtual samples' advantage
    values = torch.cat([rewards.double(), torch.ones(4, m, dtype=torch.float64)], dim=-1)  # [P, G + m]
    mu, sigma = values.mean(-1), values.std(-1)
    torch.testing.assert_close(sums.double(), -m * (1 - mu) / (sigma + 1e-6), atol=1e-5, rtol=1e-5)


def test_ngrpo_group_of_one() -> None:
    rewards = torch.tensor([[0.0], [1.0], [0.25]])
    A, _ = get_estimator("ngrpo")(rewards)  # official: mean 0, std 1 -> the raw reward
    assert torch.equal(A, rewards)
    # calibrated: values {r, 1}; r = 0: mean 0.5, unbiased std sqrt(0.5), A = -0.5 / 0.707107 = -0.707106
    A, _ = get_estimator("ngrpo")(rewards[:2], None, NGRPOConfig(single_sample="calibrated"))
    torch.testing.assert_close(A, torch.tensor([[-0.707106], [0.0]]), atol=1e-5, rtol=0)


def test_ngrpo_rewards_above_r_max_are_an_error_naming_the_group() -> None:
    rewards = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 1.5]])
    with pytest.raises(GroupInputError, match=r"ngrpo: group 2 has reward\(s\) above r_max=1.0"):
        get_estimator("ngrpo")(rewards)


# ---------------------------------------------------------------------------------------------------------
# GRPO: the GRPO columns of the same table (unbiased std over G = 8; eps negligible).
#   k = 1: mean 1/8, s^2 = 8 (1/8)(7/8) / 7 = 1/8, s = 0.353553; A+ = (7/8)/s = 2.474874, A- = -(1/8)/s = -0.353553
# ---------------------------------------------------------------------------------------------------------

GRPO_TABLE = {1: (2.4749, -0.3536), 2: (1.6202, -0.5401), 3: (1.2076, -0.7246), 4: (0.9354, -0.9354),
              5: (0.7246, -1.2076), 6: (0.5401, -1.6202), 7: (0.3536, -2.4749)}  # fmt: skip


@pytest.mark.parametrize("k", range(9))
def test_group_norm_matches_research_table(k: int) -> None:
    A, _ = get_estimator("group_norm")(binary_group(k))
    a_pos, a_neg = GRPO_TABLE.get(k, (0.0, 0.0))  # k = 0 or 8: std 0, numerator 0 -> exactly 0
    torch.testing.assert_close(A, torch.tensor([[a_pos] * k + [a_neg] * (8 - k)]), atol=1e-4, rtol=0)


@settings(max_examples=40, deadline=None)
@given(G=st.integers(1, 64), seed=st.integers(0, 2**31 - 1))
def test_group_norm_sums_to_zero_per_group(G: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    rewards = torch.randn(6, G, generator=gen) * 3  # [P, G]
    A, _ = get_estimator("group_norm")(rewards)
    torch.testing.assert_close(A.sum(-1), torch.zeros(6), atol=1e-4, rtol=0)
    if G > 1:  # normalised: unbiased std of each group's advantages is 1 (up to eps)
        torch.testing.assert_close(A.std(-1), torch.ones(6), atol=1e-4, rtol=0)


def test_group_norm_population_std_option() -> None:
    # k = 1 of 8, population std = sqrt((1/8)(7/8)) = 0.330719: A+ = 0.875/0.330719 = 2.645751
    A, _ = get_estimator("group_norm")(binary_group(1), None, GroupNormConfig(unbiased_std=False))
    torch.testing.assert_close(A[0, 0], torch.tensor(2.645751), atol=1e-5, rtol=0)


def test_rloo_dr_grpo_w_reinforce_pinned() -> None:
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0]])  # mean 0.5
    # rloo: baseline of sample 0 = (0 + 0 + 1)/3 = 1/3 -> A0 = 2/3; of sample 1 = 2/3 -> A1 = -2/3
    A, _ = get_estimator("rloo")(rewards)
    torch.testing.assert_close(A, torch.tensor([[2 / 3, -2 / 3, -2 / 3, 2 / 3]]))
    A, _ = get_estimator("dr_grpo")(rewards)
    torch.testing.assert_close(A, torch.tensor([[0.5, -0.5, -0.5, 0.5]]))
    # w_reinforce, lambda = 0.1: +0.1 for correct, -1 otherwise (uncertain and invalid too)
    A, _ = get_estimator("w_reinforce")(rewards)
    torch.testing.assert_close(A, torch.tensor([[0.1, -1.0, -1.0, 0.1]]))
    outcomes = torch.tensor([[C, U, I, W]])
    A, _ = get_estimator("w_reinforce")(rewards, outcomes, WReinforceConfig(lam=0.25))
    torch.testing.assert_close(A, torch.tensor([[0.25, -1.0, -1.0, -1.0]]))


def test_reinforce_baseline_whitens_over_the_batch() -> None:
    # group means 0.5 and 0 -> centred [[0.5, -0.5], [0, 0]]; batch mean 0, population var 0.125
    # -> whitened [[0.5, -0.5], [0, 0]] / sqrt(0.125) = [[1.414214, -1.414214], [0, 0]]
    rewards = torch.tensor([[1.0, 0.0], [3.0, 3.0]])
    A, _ = get_estimator("reinforce_baseline")(rewards)
    torch.testing.assert_close(A, torch.tensor([[1.414214, -1.414214], [0.0, 0.0]]))
    A, _ = get_estimator("reinforce_baseline")(rewards, None, ReinforceBaselineConfig(whiten=False))
    torch.testing.assert_close(A, torch.tensor([[0.5, -0.5], [0.0, 0.0]]))


def test_filtered_groups_leave_the_batch_before_whitening() -> None:
    # Kept groups [1, 0] and [0, 1] -> centred +-0.5; batch mean 0, population var 0.25 -> whitened +-1.0.
    # With the dropped all-correct group [1, 1] (centred [0, 0]) still in the batch: var 1/6 -> +-1.224745.
    rewards = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    filter_keep = torch.tensor([True, False, True])
    estimator = get_estimator("reinforce_baseline")
    A, keep = estimate_kept_groups(estimator, rewards, None, None, filter_keep)
    torch.testing.assert_close(A, torch.tensor([[1.0, -1.0], [0.0, 0.0], [-1.0, 1.0]]))
    assert keep.tolist() == [True, False, True]
    unfiltered, _ = estimator(rewards)
    torch.testing.assert_close(unfiltered[0], torch.tensor([1.224745, -1.224745]))
    # The estimator's own keep joins the filter's (UCPO drops a group without a wrong sample); nothing kept: zeros.
    outcomes = torch.tensor([[C, W], [C, C], [W, C]])
    _, keep = estimate_kept_groups(get_estimator("ucpo"), rewards, outcomes, None, torch.tensor([True, True, False]))
    assert keep.tolist() == [True, False, False]
    A, keep = estimate_kept_groups(estimator, rewards, None, None, torch.zeros(3, dtype=torch.bool))
    assert not keep.any() and not A.any() and A.shape == (3, 2)


# ---------------------------------------------------------------------------------------------------------
# UCPO: the worked examples of research/algorithms.md §2.3 (w = 1, det rewards 1/0, unbiased std).
# Example (4, 2, 2) = (n_r, n_w, n_u), G = 8: P_r = 1/2, P_w = 1/4, P_u = 1/4
#   gamma = (1/4)/(1/2) * (3/4) - (1/2)/(3/4) * (1/4) = 3/8 - 1/6 = 5/24 = 0.208333
#   det = [1,1,1,1,0,0]: mean 2/3, unbiased var = (4 (1/3)^2 + 2 (2/3)^2) / 5 = (4/9 + 8/9) / 5 = 4/15, std 0.516398
#   A_right = (1/3)/0.516398 = 0.645497, A_wrong = -(2/3)/0.516398 = -1.290994, A_unc = gamma * A_right = 0.134479
# (2,4,2): gamma = (1/2)/(3/4)*(3/4) - (1/4)/(3/4)*(1/4) = 1/2 - 1/12 = 5/12 = 0.416667; std sqrt(4/15);
#   A_right = (2/3)/0.516398 = 1.290994, A_wrong = -0.645497, A_unc = 0.537914
# (1,5,2): gamma = (5/8)/(7/8)*(3/4) - (1/8)/(3/4)*(1/4) = 15/28 - 1/24 = 83/168 = 0.494048; var 1/6;
#   A_right = (5/6)/0.408248 = 2.041241, A_wrong = -(1/6)/0.408248 = -0.408248, A_unc = 1.008471
# (6,1,1): gamma = (1/8)/(1/4)*(7/8) - (3/4)/(7/8)*(1/8) = 7/16 - 3/28 = 37/112 = 0.330357; var 1/7;
#   A_right = (1/7)/0.377964 = 0.377964, A_wrong = -(6/7)/0.377964 = -2.267787, A_unc = 0.124864
# (1,1,6): gamma = (1/8)/(7/8)*(1/4) - (1/8)/(1/4)*(3/4) = 1/28 - 3/8 = -19/56 = -0.339286; det [1,0]:
#   std sqrt(1/2); A_right = 0.707107, A_wrong = -0.707107, A_unc = -0.239914
# ---------------------------------------------------------------------------------------------------------

UCPO_EXAMPLES = {  # (n_r, n_w, n_u): (gamma, A_right, A_wrong, A_unc)
    (4, 2, 2): (5 / 24, 0.645497, -1.290994, 0.134479),
    (2, 4, 2): (5 / 12, 1.290994, -0.645497, 0.537914),
    (1, 5, 2): (83 / 168, 2.041241, -0.408248, 1.008471),
    (6, 1, 1): (37 / 112, 0.377964, -2.267787, 0.124864),
    (1, 1, 6): (-19 / 56, 0.707107, -0.707107, -0.239914),
}


@pytest.mark.parametrize("counts", list(UCPO_EXAMPLES), ids=str)
def test_ucpo_matches_worked_examples(counts: tuple[int, int, int]) -> None:
    n_r, n_w, n_u = counts
    gamma, a_right, a_wrong, a_unc = UCPO_EXAMPLES[counts]
    G = 8
    P_r, P_w, P_u = (torch.tensor(n / G, dtype=torch.float64) for n in counts)
    torch.testing.assert_close(ucpo_gamma(P_r, P_w, P_u, w=1.0, eps=1e-6).item(), gamma, atol=1e-5, rtol=0)

    outcomes = torch.tensor([[C] * n_r + [W] * n_w + [U] * n_u])  # [1, 8]
    rewards = (outcomes == C).float()  # 1 / 0; uncertain 0 too, unused
    A, keep = get_estimator("ucpo")(rewards, outcomes, UCPOConfig(w=1.0))
    expected = torch.tensor([[a_right] * n_r + [a_wrong] * n_w + [a_unc] * n_u])
    torch.testing.assert_close(A, expected, atol=1e-5, rtol=0)
    assert keep.tolist() == [True]


def test_ucpo_w_scales_only_the_suppression_term() -> None:
    # (4, 2, 2) with w = 0: gamma = gain only = 3/8; A_unc = 0.375 * 0.645497 = 0.242061
    outcomes = torch.tensor([[C, C, C, C, W, W, U, U]])
    A, _ = get_estimator("ucpo")(torch.zeros(1, 8), outcomes, UCPOConfig(w=0.0))
    torch.testing.assert_close(A[0, -2:], torch.tensor([0.242061, 0.242061]), atol=1e-5, rtol=0)


@settings(max_examples=30, deadline=None)
@given(G=st.integers(2, 32), seed=st.integers(0, 2**31 - 1))
def test_ucpo_uncertain_rollouts_never_enter_the_det_statistics(G: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    outcomes = torch.randint(0, 4, (6, G), generator=gen)  # [P, G] all four outcomes
    rewards = torch.rand(6, G, generator=gen) + (outcomes == C).float()  # graded rewards, correct ones higher
    config = UCPOConfig(det_rewards="rewards")
    A, keep = get_estimator("ucpo")(rewards, outcomes, config)
    # 1. changing the uncertain samples' rewards changes nothing
    wild = torch.where(outcomes == U, torch.randn(6, G, generator=gen) * 100, rewards)
    A_wild, _ = get_estimator("ucpo")(wild, outcomes, config)
    assert torch.equal(A, A_wild)
    # 2. a naive loop: det samples normalised among themselves only; uncertain = gamma * mean A over correct
    for p in range(6):
        o, r = outcomes[p].tolist(), rewards[p].double()
        det = [i for i in range(G) if o[i] != U]
        n_r, n_u = o.count(C), o.count(U)
        n_w = G - n_r - n_u
        assert bool(keep[p]) == (n_r > 0 and n_w > 0)
        if not keep[p]:
            assert torch.equal(A[p], torch.zeros(G))
            continue
        r_det = r[det]
        a_det = (r_det - r_det.mean()) / (r_det.std() + 1e-6)
        a_right = torch.stack([a_det[j] for j, i in enumerate(det) if o[i] == C]).mean()
        gamma = (n_w / G) / ((n_u + n_w) / G + 1e-6) * (1 - n_u / G) - (n_r / G) / ((n_r + n_w) / G + 1e-6) * (n_u / G)
        expected = torch.full((G,), float(gamma * a_right), dtype=torch.float64)
        expected[det] = a_det
        torch.testing.assert_close(A[p].double(), expected, atol=1e-5, rtol=1e-5)


def test_ucpo_invalid_counts_as_wrong_and_non_ternary_groups_are_dropped() -> None:
    outcomes = torch.tensor([
        [C, I],  # kept: det [1, 0], A = +-0.707107
        [C, C],  # no wrong
        [W, I],  # no correct
        [U, U],  # no correct, no wrong
        [C, U],  # no wrong
    ])  # fmt: skip
    A, keep = get_estimator("ucpo")(torch.zeros(5, 2), outcomes)
    assert keep.tolist() == [True, False, False, False, False]
    torch.testing.assert_close(A, torch.tensor([[0.707107, -0.707107]] + [[0.0, 0.0]] * 4), atol=1e-5, rtol=0)


def test_ucpo_without_uncertain_samples_is_grpo_on_kept_groups() -> None:
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0]])
    outcomes = torch.where(rewards == 1, C, W)
    A, _ = get_estimator("ucpo")(rewards, outcomes)
    A_grpo, _ = get_estimator("group_norm")(rewards, None, GroupNormConfig(eps=1e-6))
    torch.testing.assert_close(A, A_grpo)


def test_ucpo_requires_outcomes() -> None:
    with pytest.raises(GroupInputError, match=r"ucpo: needs outcome labels"):
        get_estimator("ucpo")(torch.zeros(2, 4), None)


# ---------------------------------------------------------------------------------------------------------
# Against the real OpenRLHF 0.11.2 RemoteExperienceMaker.compute_advantages_and_returns.
# ---------------------------------------------------------------------------------------------------------


def openrlhf_token_advantages(
    estimator: str,
    rewards: torch.Tensor,
    seed: int,
    action_mask: torch.Tensor | None = None,
    kl: torch.Tensor | None = None,
    kl_coef: float = 0.0,
) -> torch.Tensor:
    """Run OpenRLHF's own `compute_advantages_and_returns` on a shuffled, micro-batched layout of `rewards`
    [P, G] (per-token `action_mask`, `kl` [P * G, T]); return the token advantages [P * G, T] in prompt order."""
    from openrlhf.trainer.ppo_utils.experience import Experience
    from openrlhf.trainer.ppo_utils.experience_maker import RemoteExperienceMaker

    P, G = rewards.shape
    N = P * G
    if action_mask is None:  # every response 5 tokens: per-token whitening == per-response whitening
        action_mask = torch.ones(N, 5, dtype=torch.bool)
    T = action_mask.shape[1]
    kl = torch.zeros(N, T) if kl is None else kl
    args = types.SimpleNamespace(
        rollout=types.SimpleNamespace(n_samples_per_prompt=G, max_new_tokens=T),
        algo=types.SimpleNamespace(advantage=types.SimpleNamespace(estimator=estimator, gamma=1.0, no_std_norm=False)),
        reward=types.SimpleNamespace(
            clip_range=(-10.0, 10.0), overlong_buffer_len=None, stop_properly_penalty_coef=None
        ),
        data=types.SimpleNamespace(max_len=T),
    )
    maker = object.__new__(RemoteExperienceMaker)  # only the attributes the method reads
    maker.strategy = types.SimpleNamespace(args=args)
    maker.advantage_estimator = estimator
    maker.kl_ctl = types.SimpleNamespace(value=kl_coef)

    order = torch.randperm(N, generator=torch.Generator().manual_seed(seed))  # experiences arrive out of order
    flat = rewards.reshape(-1)  # [N]  prompt-major, as OpenRLHF restores it
    experiences = [
        Experience(index=chunk.tolist(), rewards=flat[chunk].clone(), action_mask=action_mask[chunk].clone(),
                   kl=kl[chunk].clone(), info={})  # fmt: skip
        for chunk in order.split(3)  # micro-batches of 3
    ]
    experiences = maker.compute_advantages_and_returns(experiences)
    out = torch.empty(N, T)
    for chunk, exp in zip(order.split(3), experiences):
        out[chunk] = exp.advantages.float()
    return out


@pytest.mark.parametrize(
    "name,config",
    [
        ("group_norm", GroupNormConfig(eps=1e-9)),  # OpenRLHF's eps (also our default)
        ("rloo", None),
        ("reinforce_baseline", None),
        ("dr_grpo", None),
    ],
)
@pytest.mark.parametrize("rewards_kind", ["continuous", "binary"])
def test_matches_openrlhf_compute_advantages_and_returns(openrlhf_cpu, name, config, rewards_kind) -> None:
    for seed in range(3):
        gen = torch.Generator().manual_seed(seed)
        P, G = 5, [2, 4, 8][seed]
        if rewards_kind == "binary":
            rewards = (torch.rand(P, G, generator=gen) < 0.5).float()
            rewards[0] = 1.0  # a homogeneous group: std 0
        else:
            rewards = torch.rand(P, G, generator=gen) * 4 - 2
        ours, _ = get_estimator(name)(rewards, None, config)
        theirs = openrlhf_token_advantages(name, rewards, seed)  # [N, 5], constant along each response
        torch.testing.assert_close(theirs, theirs[:, :1].expand(-1, 5))
        torch.testing.assert_close(ours, theirs[:, 0].reshape(P, G), atol=1e-5, rtol=1e-5)
        assert ours.abs().sum() > 0  # not a vacuous all-zero comparison


@pytest.mark.parametrize("name", ["reinforce_baseline", "group_norm", "rloo"])
def test_lmm_r1_pipeline_with_kl_in_the_reward_matches_openrlhf(openrlhf_cpu, name: str) -> None:
    """LMM-R1's FRE/MGT setting: KL to the reference as a per-token reward penalty, responses of different
    lengths, and (reinforce_baseline) OpenRLHF's token-weighted whitening after the penalty. Ours:
    estimator (whiten=False) -> kl_penalized_advantages -> whiten_token_advantages."""
    from lmmr1.algorithms import kl_penalized_advantages, whiten_token_advantages

    gen = torch.Generator().manual_seed(7)
    P, G, T = 4, 4, 12
    rewards = (torch.rand(P, G, generator=gen) < 0.5).float() + 0.1 * torch.rand(P, G, generator=gen)
    lengths = torch.randint(1, T + 1, (P * G,), generator=gen)
    mask = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)  # [N, T] right padded, varying lengths
    kl = torch.rand(P * G, T, generator=gen) * 0.5  # [N, T]
    kl_coef = 0.05

    config = ReinforceBaselineConfig(whiten=False) if name == "reinforce_baseline" else None
    A, _ = get_estimator(name)(rewards, None, config)  # [P, G]
    ours = kl_penalized_advantages(A.reshape(-1), kl, mask, kl_coef, clip_range=(-10.0, 10.0))  # [N, T]
    if name == "reinforce_baseline":
        ours = whiten_token_advantages(ours, mask)
    theirs = openrlhf_token_advantages(name, rewards, seed=7, action_mask=mask, kl=kl, kl_coef=kl_coef)
    torch.testing.assert_close(ours[mask], theirs[mask], atol=1e-5, rtol=1e-5)
    # the penalty matters: without it the advantages differ
    assert not torch.allclose(ours[mask], kl_penalized_advantages(A.reshape(-1), kl, mask, 0.0)[mask], atol=1e-3)


@pytest.mark.parametrize("kl_coef", [0.0, 0.05])
def test_local_engine_token_advantages_with_whiten_tokens_match_openrlhf(openrlhf_cpu, kl_coef: float) -> None:
    """The single-device engine's path for LMM-R1's configs (reinforce_baseline, whiten_tokens, KL in the
    reward): `response_token_advantages` on the estimator's output equals OpenRLHF's token advantages."""
    from lmmr1.engine.local import response_token_advantages

    gen = torch.Generator().manual_seed(11)
    P, G, T = 3, 4, 9
    rewards = (torch.rand(P, G, generator=gen) < 0.5).float() * 1.5
    lengths = torch.randint(1, T + 1, (P * G,), generator=gen)
    mask = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)  # [N, T]
    kl = torch.rand(P * G, T, generator=gen) * 0.5 * mask  # [N, T]
    config = get_estimator("reinforce_baseline").make_config(whiten=False, whiten_tokens=True)
    A, _ = get_estimator("reinforce_baseline")(rewards, None, config)  # [P, G]: r - mean
    ours = response_token_advantages(A.reshape(-1), lengths.tolist(), [kl[i, :n] for i, n in enumerate(lengths)],
                                     kl_coef, whiten_tokens=True)
    theirs = openrlhf_token_advantages("reinforce_baseline", rewards, seed=11, action_mask=mask, kl=kl, kl_coef=kl_coef)
    torch.testing.assert_close(torch.cat(ours), theirs[mask], atol=1e-5, rtol=1e-5)


def test_whiten_and_whiten_tokens_exclude_each_other() -> None:
    with pytest.raises(ValueError, match="exclude each other"):
        ReinforceBaselineConfig(whiten=True, whiten_tokens=True)


# ---------------------------------------------------------------------------------------------------------
# Properties over random group sizes, reward values and outcome mixes.
# ---------------------------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(sorted(ESTIMATORS)),
    P=st.integers(1, 4),
    G=st.integers(1, 64),
    scale=st.sampled_from([1e-6, 1.0, 1e3]),
    binary=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_estimators_never_produce_nan_or_inf(name, P, G, scale, binary, seed) -> None:
    if name == "rloo" and G == 1:
        G = 2  # rloo refuses G = 1 (tested below)
    gen = torch.Generator().manual_seed(seed)
    outcomes = torch.randint(0, 4, (P, G), generator=gen)  # [P, G]
    if binary:
        rewards = (outcomes == C).float() * scale
    else:
        rewards = (torch.rand(P, G, generator=gen) * 2 - 1) * scale
    config = NGRPOConfig(r_max=scale) if name == "ngrpo" else None
    A, keep = get_estimator(name)(rewards, outcomes, config)
    assert A.shape == (P, G) and A.dtype == torch.float32
    assert keep.shape == (P,) and keep.dtype == torch.bool
    assert bool(torch.isfinite(A).all())


def test_rewards_dtype_is_kept_when_wider_than_float32() -> None:
    A, _ = get_estimator("group_norm")(torch.tensor([[1.0, 0.0]], dtype=torch.float64))
    assert A.dtype == torch.float64


# ---------------------------------------------------------------------------------------------------------
# Registry and bad input.
# ---------------------------------------------------------------------------------------------------------


def test_registry_names_and_unknown_name_error() -> None:
    assert set(ESTIMATORS) == {"group_norm", "rloo", "reinforce_baseline", "dr_grpo", "w_reinforce", "ngrpo", "ucpo"}
    with pytest.raises(KeyError, match=r"unknown advantage estimator 'grpo'; valid names: \['dr_grpo', 'group_norm'"):
        get_estimator("grpo")


def test_make_config_rejects_unknown_keys() -> None:
    assert get_estimator("ngrpo").make_config(r_max=2.0).r_max == 2.0
    with pytest.raises(TypeError, match=r"ngrpo: unknown config key\(s\) \['rmax'\]; valid keys: \['r_max'"):
        get_estimator("ngrpo").make_config(rmax=2.0)
    with pytest.raises(TypeError, match=r"ucpo: config must be a UCPOConfig, got NGRPOConfig"):
        get_estimator("ucpo")(torch.zeros(1, 2), torch.tensor([[C, W]]), NGRPOConfig())


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_non_finite_rewards_name_the_estimator_and_group(name: str, bad: float) -> None:
    rewards = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, bad]])
    outcomes = torch.tensor([[C, W]] * 3)
    with pytest.raises(GroupInputError, match=rf"^{name}: rewards of group 2 are not finite"):
        get_estimator(name)(rewards, outcomes)


def test_shape_and_outcome_errors() -> None:
    grpo = get_estimator("group_norm")
    with pytest.raises(GroupInputError, match=r"group_norm: rewards must have shape \[P, G\]"):
        grpo(torch.zeros(8))
    with pytest.raises(GroupInputError, match=r"group_norm: outcomes shape \(2, 3\) does not match rewards shape"):
        grpo(torch.zeros(2, 4), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(GroupInputError, match=r"ucpo: outcomes of group 1 hold codes outside"):
        get_estimator("ucpo")(torch.zeros(2, 2), torch.tensor([[C, W], [C, 7]]))
    with pytest.raises(GroupInputError, match=r"rloo: the leave-one-out baseline needs G >= 2"):
        get_estimator("rloo")(torch.zeros(3, 1))
    # rloo: A_0 = 3e38 - (-3e38) = 6e38, beyond float32's 3.4e38
    with pytest.raises(GroupInputError, match=r"rloo: advantages of group 1 overflowed"):
        get_estimator("rloo")(torch.tensor([[1.0, 0.0], [3e38, -3e38]]))


def test_batch_that_g_does_not_divide_names_the_incomplete_group() -> None:
    assert as_groups(torch.arange(12.0), 4).shape == (3, 4)
    with pytest.raises(GroupInputError, match=r"ngrpo: 10 rewards are not a whole number of groups of G=4: group 2"):
        as_groups(torch.zeros(10), 4, caller="ngrpo")


def test_outcomes_to_tensor() -> None:
    labels = ["correct", "wrong", "Uncertain", "invalid", Outcome.CORRECT, "WRONG"]
    assert outcomes_to_tensor(labels).tolist() == [C, W, U, I, C, W]
    assert outcomes_to_tensor(labels, group_size=3).tolist() == [[C, W, U], [I, C, W]]
    with pytest.raises(GroupInputError, match=r"outcome label 'right' at position 1 is not one of \['correct'"):
        outcomes_to_tensor(["correct", "right"])
    with pytest.raises(GroupInputError, match=r"outcomes are not a whole number of groups of G=4"):
        outcomes_to_tensor(labels, group_size=4)


@pytest.mark.parametrize(
    "factory,message",
    [
        (lambda: NGRPOConfig(num_virtual=0), "ngrpo: num_virtual must be an int >= 1"),
        (lambda: NGRPOConfig(eps=0.0), "ngrpo: eps must be a finite number > 0"),
        (lambda: NGRPOConfig(r_max=float("inf")), "ngrpo: r_max must be finite"),
        (lambda: GroupNormConfig(eps=-1.0), "group_norm: eps must be a finite number > 0"),
        (lambda: UCPOConfig(det_rewards="scores"), "ucpo: det_rewards must be"),
        (lambda: UCPOConfig(w=-1.0), "ucpo: w must be"),
    ],
)
def test_config_validation(factory, message) -> None:
    with pytest.raises(ValueError, match=message):
        factory()
