"""lmmr1's estimators inside OpenRLHF 0.11.2's experience maker, on real `Experience` objects shuffled into
micro-batches the way OpenRLHF hands them over (out of prompt order, `experience.index` says where each
sample belongs)."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch


def _args(estimator: str, G: int, estimator_args: dict | None = None):
    return SimpleNamespace(
        algo=SimpleNamespace(advantage=SimpleNamespace(estimator=estimator, gamma=1.0, lambd=1.0, no_std_norm=False)),
        rollout=SimpleNamespace(n_samples_per_prompt=G, max_new_tokens=8),
        reward=SimpleNamespace(clip_range=(-10.0, 10.0), overlong_buffer_len=None, stop_properly_penalty_coef=None),
        data=SimpleNamespace(max_len=64),
        lmmr1=SimpleNamespace(estimator_args=estimator_args or {}),
    )


def _maker(cls, args, kl_coef: float):
    maker = object.__new__(cls)  # the Ray-free part: compute_advantages_and_returns reads only these
    maker.strategy = SimpleNamespace(args=args)
    maker.kl_ctl = SimpleNamespace(value=kl_coef)
    maker.advantage_estimator = args.algo.advantage.estimator
    return maker


def _experiences(P: int, G: int, seed: int, outcomes: torch.Tensor | None = None, micro: int = 3):
    """P * G samples with random rewards, response lengths and KL, shuffled into micro-batches."""
    from openrlhf.trainer.ppo_utils.experience import Experience

    g = torch.Generator().manual_seed(seed)
    N, A = P * G, 6
    rewards = torch.randint(0, 3, (N,), generator=g).float() / 2  # {0, 0.5, 1}
    lengths = torch.randint(1, A + 1, (N,), generator=g)
    action_mask = torch.arange(A)[None, :] < lengths[:, None]  # [N, A]
    kl = torch.rand(N, A, generator=g) * action_mask
    order = torch.randperm(N, generator=g).tolist()
    experiences = []
    for start in range(0, N, micro):
        idx = order[start : start + micro]
        info = {}
        if outcomes is not None:
            flat = outcomes.reshape(-1)[idx]
            for key, code in (("reward_correct", 0), ("reward_wrong", 1), ("reward_uncertain", 2), ("reward_invalid", 3)):
                info[key] = (flat == code).float()
        experiences.append(Experience(
            sequences=torch.zeros(len(idx), 10, dtype=torch.long), attention_mask=torch.ones(len(idx), 10),
            action_mask=action_mask[idx], rewards=rewards[idx].clone(), kl=kl[idx].clone(), index=idx, info=info,
        ))
    return experiences, rewards.reshape(P, G), action_mask, kl


def _last_token_advantage(experiences, N, kl_coef, kl, action_mask):
    """The advantage at each sample's first action token = scalar - kl_coef * sum of its KL (gamma 1)."""
    first = torch.empty(N)
    for exp in experiences:
        for row, i in enumerate(exp.index):
            first[i] = exp.advantages[row, 0]
    return first + kl_coef * (kl * action_mask).sum(-1)  # remove the KL part: the estimator's scalar


@pytest.mark.parametrize("estimator", ["group_norm", "rloo", "dr_grpo"])
def test_matches_upstream_for_upstream_estimators(openrlhf_cpu, estimator):
    from openrlhf.trainer.ppo_utils.experience_maker import RemoteExperienceMaker

    from lmmr1.distributed.experience_maker import LmmExperienceMaker

    P, G, kl_coef = 4, 4, 0.05
    experiences, _, _, _ = _experiences(P, G, seed=1)
    args = _args(estimator, G)
    upstream = _maker(RemoteExperienceMaker, args, kl_coef).compute_advantages_and_returns(copy.deepcopy(experiences))
    ours = _maker(LmmExperienceMaker, args, kl_coef).compute_advantages_and_returns(copy.deepcopy(experiences))
    for a, b in zip(upstream, ours):
        assert torch.allclose(a.advantages, b.advantages, atol=1e-6)
        assert torch.allclose(a.returns, b.returns, atol=1e-6)
        assert torch.allclose(a.info["return"], b.info["return"], atol=1e-6)


def test_ngrpo_advantages_equal_lmmr1_estimator(openrlhf_cpu):
    from lmmr1.algorithms import get_estimator
    from lmmr1.distributed.experience_maker import LmmExperienceMaker

    P, G, kl_coef = 5, 4, 0.1
    experiences, rewards, action_mask, kl = _experiences(P, G, seed=2)
    rewards[0] = 0.0  # an all-wrong group: NGRPO still gives it -1/sqrt(G+1)
    for exp in experiences:
        exp.rewards = rewards.reshape(-1)[exp.index].clone()
    out = _maker(LmmExperienceMaker, _args("ngrpo", G), kl_coef).compute_advantages_and_returns(experiences)
    expected, _ = get_estimator("ngrpo")(rewards, None, None)
    got = _last_token_advantage(out, P * G, kl_coef, kl, action_mask).reshape(P, G)
    assert torch.allclose(got, expected.float(), atol=1e-5)
    assert torch.allclose(got[0], torch.full((G,), -1 / (G + 1) ** 0.5), atol=1e-5)


def test_ucpo_reads_outcomes_from_reward_extra_logs(openrlhf_cpu):
    from lmmr1.algorithms import get_estimator
    from lmmr1.distributed.experience_maker import LmmExperienceMaker

    P, G = 3, 8
    outcomes = torch.tensor([[0, 0, 0, 0, 1, 1, 2, 2],    # (n_r, n_w, n_u) = (4, 2, 2)
                             [0, 1, 1, 1, 1, 1, 2, 2],    # (1, 5, 2)
                             [0, 0, 0, 0, 0, 0, 0, 0]])   # all correct: UCPO drops the group
    experiences, _, action_mask, kl = _experiences(P, G, seed=3, outcomes=outcomes)
    rewards = (outcomes == 0).float()
    for exp in experiences:
        exp.rewards = rewards.reshape(-1)[exp.index].clone()
    out = _maker(LmmExperienceMaker, _args("ucpo", G), 0.0).compute_advantages_and_returns(experiences)
    expected, keep = get_estimator("ucpo")(rewards, outcomes, None)
    got = _last_token_advantage(out, P * G, 0.0, kl, action_mask).reshape(P, G)
    assert keep.tolist() == [True, True, False]
    assert torch.allclose(got, (expected * keep[:, None]).float(), atol=1e-5)
    assert got[0, 0] == pytest.approx(0.645497, abs=1e-5)  # the worked example (research/algorithms.md)


def test_ucpo_without_outcome_logs_is_a_clear_error(openrlhf_cpu):
    from lmmr1.algorithms import GroupInputError
    from lmmr1.distributed.experience_maker import LmmExperienceMaker

    experiences, _, _, _ = _experiences(2, 4, seed=4)
    with pytest.raises((GroupInputError, ValueError), match="ucpo"):
        _maker(LmmExperienceMaker, _args("ucpo", 4), 0.0).compute_advantages_and_returns(experiences)


def test_lmmr1_flags_choose_estimator_and_filter_as_after_argument_translation(openrlhf_cpu):
    """After translation OpenRLHF sees `group_norm`; `args.lmmr1` (JSON text, as hierarchize leaves it) says
    NGRPO with r_max and the drop_all_correct filter: an all-correct group gets advantage 0."""
    from lmmr1.algorithms import get_estimator
    from lmmr1.distributed.experience_maker import LmmExperienceMaker

    P, G, kl_coef = 4, 4, 0.0
    experiences, rewards, action_mask, kl = _experiences(P, G, seed=5)
    rewards[1] = 1.5  # all correct at r_max = 1.5
    rewards[2] = 0.0  # all wrong: kept, NGRPO's non-zero advantage
    for exp in experiences:
        exp.rewards = rewards.reshape(-1)[exp.index].clone()
    args = _args("group_norm", G)
    args.lmmr1 = SimpleNamespace(estimator="ngrpo", estimator_args='{"r_max": 1.5}', group_filter="drop_all_correct")
    out = _maker(LmmExperienceMaker, args, kl_coef).compute_advantages_and_returns(experiences)
    expected, _ = get_estimator("ngrpo")(rewards, None, get_estimator("ngrpo").make_config(r_max=1.5))
    expected[1] = 0.0
    got = _last_token_advantage(out, P * G, kl_coef, kl, action_mask).reshape(P, G)
    assert torch.allclose(got, expected.float(), atol=1e-5)
    assert got[2].abs().min() > 0.1
    kept = torch.cat([exp.info["lmmr1_group_kept"] for exp in out])
    assert kept.sum() == (P - 1) * G
    none_correct = torch.cat([exp.info["lmmr1_groups_none_correct"] for exp in out])
    all_correct = torch.cat([exp.info["lmmr1_groups_all_correct"] for exp in out])
    sample_group = torch.tensor([i // G for exp in out for i in exp.index])
    # Only group 1's rewards reach r_max = 1.5 (the others are in {0, 0.5, 1}): mixed groups cannot occur here.
    assert sample_group[all_correct.bool()].unique().tolist() == [1]
    assert sample_group[none_correct.bool()].unique().tolist() == [0, 2, 3]
    assert not torch.cat([exp.info["lmmr1_groups_mixed"] for exp in out]).any()


def test_dropped_groups_get_no_advantage_not_even_the_kl_penalty(openrlhf_cpu):
    """With the KL in the reward (LMM-R1's kl_mode), a group the filter drops has advantage 0 at every token: its
    responses add nothing to the policy gradient. Kept groups keep scalar - kl_coef * (KL summed to the end)."""
    from lmmr1.distributed.experience_maker import LmmExperienceMaker

    P, G, kl_coef = 4, 4, 0.05
    experiences, rewards, action_mask, kl = _experiences(P, G, seed=7)
    rewards[1] = 1.0  # all correct: dropped by drop_all_correct
    rewards[0] = torch.tensor([1.0, 0.0, 0.5, 0.0])  # mixed: kept
    for exp in experiences:
        exp.rewards = rewards.reshape(-1)[exp.index].clone()
    args = _args("group_norm", G)
    args.lmmr1 = SimpleNamespace(estimator="group_norm", estimator_args={}, group_filter="drop_all_correct")
    out = _maker(LmmExperienceMaker, args, kl_coef).compute_advantages_and_returns(experiences)
    for exp in out:
        for row, i in enumerate(exp.index):
            if i // G == 1:
                assert not exp.advantages[row].any(), exp.advantages[row]
            elif i // G == 0:
                tokens = int(action_mask[i].sum())
                assert exp.advantages[row, :tokens].ne(0).all()


@pytest.mark.parametrize("kl_coef", [0.0, 0.05])
def test_reinforce_baseline_whiten_tokens_is_upstreams_order(openrlhf_cpu, kl_coef):
    """LMM-R1's FRE/MGT setting on the distributed engine: lmmr1's reinforce_baseline with whiten_tokens gives
    OpenRLHF's own reinforce_baseline token advantages (r - mean, KL reward penalty, whitening over tokens,
    responses of different lengths), not the per-response whitening of `whiten`."""
    from openrlhf.trainer.ppo_utils.experience_maker import RemoteExperienceMaker

    from lmmr1.distributed.experience_maker import LmmExperienceMaker

    P, G = 4, 4
    experiences, _, action_mask, _ = _experiences(P, G, seed=3)
    args = _args("reinforce_baseline", G, {"whiten": False, "whiten_tokens": True})
    upstream = _maker(RemoteExperienceMaker, args, kl_coef).compute_advantages_and_returns(copy.deepcopy(experiences))
    ours = _maker(LmmExperienceMaker, args, kl_coef).compute_advantages_and_returns(copy.deepcopy(experiences))
    for a, b in zip(upstream, ours):
        mask = b.action_mask.bool()
        torch.testing.assert_close(b.advantages[mask], a.advantages[mask].float(), atol=1e-5, rtol=1e-5)
    per_response = _maker(LmmExperienceMaker, _args("reinforce_baseline", G), kl_coef).compute_advantages_and_returns(
        copy.deepcopy(experiences))
    assert any(not torch.allclose(a.advantages[a.action_mask.bool()], b.advantages[b.action_mask.bool()], atol=1e-3)
               for a, b in zip(per_response, ours))  # lengths differ: the two orders disagree


def test_whiten_tokens_leaves_dropped_groups_at_zero(openrlhf_cpu):
    from lmmr1.distributed.experience_maker import LmmExperienceMaker

    P, G = 4, 4
    experiences, rewards, _, _ = _experiences(P, G, seed=4)
    rewards[2] = 1.0  # all correct: dropped
    rewards[0] = torch.tensor([1.0, 0.0, 0.5, 0.0])
    for exp in experiences:
        exp.rewards = rewards.reshape(-1)[exp.index].clone()
    args = _args("reinforce_baseline", G, {"whiten": False, "whiten_tokens": True})
    args.lmmr1.group_filter = "drop_all_correct"
    args.lmmr1.estimator = "reinforce_baseline"
    out = _maker(LmmExperienceMaker, args, 0.05).compute_advantages_and_returns(experiences)
    kept_tokens = torch.cat([e.advantages[e.action_mask.bool() & e.info["lmmr1_group_kept"].bool()[:, None]]
                             for e in out])
    assert abs(float(kept_tokens.mean())) < 1e-5 and abs(float(kept_tokens.std(unbiased=False)) - 1) < 1e-4
    for exp in out:
        for row, i in enumerate(exp.index):
            if i // G == 2:
                assert not exp.advantages[row].any()
