"""lmmr1's estimators inside OpenRLHF's experience maker (runs in the Ray trainer actor, not the driver).

`LmmExperienceMaker.compute_advantages_and_returns` replaces the estimator step of OpenRLHF 0.11.2's
`RemoteExperienceMaker.compute_advantages_and_returns` and keeps everything around it exactly as upstream:

    1. rewards to >= float32, DAPO/ProRL length penalties (`apply_length_penalties`);
    2. samples back in prompt order through `experience.index`, reshaped to [P, G];
    3. lmmr1's group filter, then the estimator on the kept groups (`estimate_kept_groups`): advantages
       [P, G], keep [P]; groups the filter or the estimator drops get advantage 0, KL penalty included;
    4. per token: the scalar on the last action token minus kl_coef * KL (`compute_reward`, clipped to
       `--reward.clip_range`), cumulative returns with gamma = 1, advantages = returns (upstream's path for
       its group estimators);
    5. no global whitening, except reinforce_baseline with `whiten_tokens`: upstream's whitening over every
       action token of the kept samples (`whiten` instead whitens per response inside the estimator).

Outcome labels (UCPO, `w_reinforce`, outcome-aware filters) travel from the reward through `extra_logs`:
lmmr1's `reward_func` logs the indicators `reward_correct`, `reward_wrong`, `reward_uncertain`,
`reward_invalid`, which OpenRLHF stores in `experience.info`. Estimators that need outcomes fail with a
clear error when those keys are missing.

The estimator is `args.lmmr1.estimator` (lmmr1's flag; OpenRLHF's own `--algo.advantage.estimator` cannot
name NGRPO or UCPO), its config fields `args.lmmr1.estimator_args` (a JSON object), the group filter
`args.lmmr1.group_filter` (groups it drops get advantage 0 at every token). Without lmmr1's flags,
OpenRLHF's estimator name and no filter.
"""

from __future__ import annotations

import itertools
import json

import torch
from openrlhf.trainer.ppo_utils.experience_maker import RemoteExperienceMaker, apply_length_penalties, compute_reward

from lmmr1.algorithms import (
    FilterConfig, Outcome, estimate_kept_groups, get_estimator, get_filter, group_composition, whiten_token_advantages,
    whitens_tokens,
)

OUTCOME_KEYS = {"reward_correct": Outcome.CORRECT, "reward_wrong": Outcome.WRONG,
                "reward_uncertain": Outcome.UNCERTAIN, "reward_invalid": Outcome.INVALID}


def outcomes_from_info(experiences) -> torch.Tensor | None:
    """Outcome codes [N] (per sample, experience order) from the reward's indicator logs, or None."""
    if not all(key in exp.info for exp in experiences for key in OUTCOME_KEYS):
        return None
    codes = []
    for exp in experiences:
        indicators = torch.stack([torch.as_tensor(exp.info[key]).flatten().float() for key in OUTCOME_KEYS], -1)
        codes.append(torch.tensor([int(c) for c in OUTCOME_KEYS.values()])[indicators.argmax(-1)])
    return torch.cat(codes)


def in_prompt_order(values: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Scatter per-sample values (experience order) into original prompt order: out[indices[i]] = values[i]."""
    out = torch.empty_like(values)
    out[indices] = values
    return out


def in_experience_order(values: torch.Tensor, indices: torch.Tensor, lengths: list[int]) -> tuple[torch.Tensor, ...]:
    """The inverse of `in_prompt_order`: values in prompt order ([P, G], or anything of P * G elements) ->
    one tensor per experience, experience i holding lengths[i] samples: out = values.flatten()[indices] split."""
    return values.reshape(-1)[indices].split(lengths)


def lmmr1_settings(args) -> tuple[str, dict, str]:
    """(estimator name, estimator config fields, group filter name) from `args.lmmr1` (lmmr1's flags, see
    lmmr1.distributed.args); without them, OpenRLHF's estimator name and no filter."""
    ours = getattr(args, "lmmr1", None)
    name = getattr(ours, "estimator", None) or args.algo.advantage.estimator
    options = getattr(ours, "estimator_args", None) or {}
    if isinstance(options, str):
        options = json.loads(options)
    return name, dict(options), getattr(ours, "group_filter", None) or "none"


class LmmExperienceMaker(RemoteExperienceMaker):
    def compute_advantages_and_returns(self, experiences):
        args = self.strategy.args
        name, options, filter_name = lmmr1_settings(args)
        estimator = get_estimator(name)
        config = estimator.make_config(**options)
        group_filter = get_filter(filter_name)
        G = args.rollout.n_samples_per_prompt

        # 1. Rewards to >= float32; length penalties as upstream.
        for experience in experiences:
            experience.rewards = experience.rewards.to(torch.promote_types(experience.rewards.dtype, torch.float32))
        apply_length_penalties(experiences, args)

        # 2. Prompt order, [P, G].
        exp_len = [len(experience.index) for experience in experiences]
        indices = torch.tensor(list(itertools.chain.from_iterable(experience.index for experience in experiences)))
        rewards = in_prompt_order(torch.cat([e.rewards for e in experiences]), indices).reshape(-1, G)  # [P, G]
        outcomes = outcomes_from_info(experiences)
        if outcomes is not None:
            outcomes = in_prompt_order(outcomes, indices).reshape(-1, G)  # [P, G]

        def per_experience(values: torch.Tensor) -> tuple[torch.Tensor, ...]:  # [P, G] -> one tensor per experience
            return in_experience_order(values, indices, exp_len)

        group_std = rewards.std(-1, keepdim=True) if G > 1 else torch.zeros_like(rewards)  # [P, 1]; G = 1: 0
        for experience, std in zip(experiences, per_experience(group_std.expand(-1, G))):
            experience.info["group_reward_std"] = std

        # 3. lmmr1's group filter, then the estimator on the kept groups (dropped groups: advantage 0). Each
        #    sample also logs its group's composition: OpenRLHF's mean over samples = the fraction of groups.
        r_max = float(options.get("r_max", 1.0))
        for kind, mask in group_composition(rewards, outcomes, r_max).items():  # [P] each
            for experience, value in zip(experiences, per_experience(mask[:, None].expand(-1, G))):
                experience.info[f"lmmr1_groups_{kind}"] = value.float()
        report = group_filter(rewards, outcomes, FilterConfig(r_max=r_max))
        advantages, keep = estimate_kept_groups(estimator, rewards, outcomes, config, report.keep)  # [P, G], [P]
        scalars = per_experience((advantages * keep[:, None]).to(rewards.dtype))
        kept = per_experience(keep[:, None].expand(-1, G))

        # 4. Per-token rewards (KL penalty), returns, advantages: upstream's group-estimator path.
        #    A dropped group gets no KL penalty either: advantage 0 at every token, no policy gradient.
        for experience, scalar, group_kept in zip(experiences, scalars, kept):
            kl = experience.kl * group_kept[:, None].to(experience.kl.dtype)  # [B, T]
            reward = compute_reward(scalar, self.kl_ctl.value, kl, action_mask=experience.action_mask,
                                    reward_clip_range=args.reward.clip_range)
            experience.returns = self.get_cumulative_returns(reward, experience.action_mask, 1.0)
            experience.advantages = experience.returns.clone()
            experience.info["return"] = reward.sum(dim=-1)
            experience.info["lmmr1_group_kept"] = group_kept.float()
            experience.kl = None

        # 5. reinforce_baseline's whiten_tokens: upstream's whitening over every action token, of kept groups.
        if whitens_tokens(config):
            whiten_kept_tokens(experiences)
        return experiences


def whiten_kept_tokens(experiences) -> None:
    """A <- (A - mean) * rsqrt(max(var, 1e-8)) over the action tokens of every kept sample of the batch
    (OpenRLHF's reinforce_baseline normalisation; dropped groups stay at 0 and out of the statistics)."""
    masks = [e.action_mask.bool() & e.info["lmmr1_group_kept"].bool()[:, None] for e in experiences]
    flat = whiten_token_advantages(torch.cat([e.advantages.flatten() for e in experiences])[None],
                                   torch.cat([m.flatten() for m in masks])[None])[0]
    for experience, mask, values in zip(experiences, masks, flat.split([m.numel() for m in masks])):
        whitened = values.view_as(mask).to(experience.advantages.dtype)
        experience.advantages = torch.where(mask, whitened, experience.advantages)  # returns stay as they are
