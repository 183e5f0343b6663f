"""Grouped rollouts: the outcome encoding, the [N] -> [P, G] reshape, and input validation.

Every estimator and filter in `lmmr1.algorithms` sees one batch as P prompts x G samples:

    rewards   [P, G]  float, one scalar per response (the reward function's `total`)
    outcomes  [P, G]  int64, one `Outcome` per response (the reward function's `outcome`)

`Outcome` is the one shared encoding of a graded response. The reward functions report it as a string
("correct" / "wrong" / "uncertain" / "invalid", `RewardResult.outcome`); `outcomes_to_tensor` turns a
list of those strings into this encoding.

    CORRECT    the final answer was verified right
    WRONG      an answer was given and verified wrong
    UNCERTAIN  the response abstained / expressed uncertainty (UCPO's third class)
    INVALID    no gradable answer (malformed output, missing box, reward timeout)

Conventions: rewards must be finite (a NaN or inf is an error that names the caller and the group, never
a silently NaN advantage); the group axis is the last axis; a flat batch is grouped as consecutive runs of
G samples (row p holds samples p*G .. p*G+G-1), which is how OpenRLHF and verl lay out
`n_samples_per_prompt` copies after restoring prompt order.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

import torch


class Outcome(enum.IntEnum):
    """How one response was graded; the integer is what an `outcomes` tensor holds."""

    CORRECT = 0
    WRONG = 1
    UNCERTAIN = 2
    INVALID = 3


OUTCOME_LABELS: dict[str, Outcome] = {o.name.lower(): o for o in Outcome}  # "correct" -> Outcome.CORRECT


class GroupInputError(ValueError):
    """Bad input to an estimator or filter. The message names the caller and the offending group."""


def outcomes_to_tensor(labels: Sequence[str | Outcome], group_size: int | None = None) -> torch.Tensor:
    """Encode outcome labels ("correct", "wrong", "uncertain", "invalid"; case-insensitive, or `Outcome`
    members) as an int64 tensor: [N], or [N // group_size, group_size] when `group_size` is given."""
    codes = []
    for i, label in enumerate(labels):
        if isinstance(label, Outcome):
            codes.append(int(label))
            continue
        key = label.strip().lower() if isinstance(label, str) else None
        if key not in OUTCOME_LABELS:
            raise GroupInputError(
                f"outcome label {label!r} at position {i} is not one of {sorted(OUTCOME_LABELS)}"
            )
        codes.append(int(OUTCOME_LABELS[key]))
    outcomes = torch.tensor(codes, dtype=torch.long)  # [N]
    if group_size is not None:
        outcomes = as_groups(outcomes, group_size, what="outcomes")  # [P, G]
    return outcomes


def as_groups(values: torch.Tensor, group_size: int, *, what: str = "rewards", caller: str = "") -> torch.Tensor:
    """Reshape a flat batch [N] into [P, G] with P = N / G; an error if G does not divide N."""
    prefix = f"{caller}: " if caller else ""
    if values.dim() != 1:
        raise GroupInputError(f"{prefix}{what} must be a flat [N] tensor to group, got shape {tuple(values.shape)}")
    if group_size < 1:
        raise GroupInputError(f"{prefix}group size G must be >= 1, got {group_size}")
    n = values.numel()
    if n % group_size != 0:
        raise GroupInputError(
            f"{prefix}{n} {what} are not a whole number of groups of G={group_size}: "
            f"group {n // group_size} (the last) would have only {n % group_size} samples"
        )
    return values.reshape(n // group_size, group_size)


def check_rewards(rewards: torch.Tensor, caller: str) -> None:
    """Rewards must be a floating [P, G] tensor, P >= 1, G >= 1, every value finite."""
    if not isinstance(rewards, torch.Tensor):
        raise GroupInputError(f"{caller}: rewards must be a torch.Tensor, got {type(rewards).__name__}")
    if rewards.dim() != 2 or rewards.shape[0] < 1 or rewards.shape[1] < 1:
        raise GroupInputError(
            f"{caller}: rewards must have shape [P, G] with P, G >= 1 (use as_groups on a flat batch), "
            f"got shape {tuple(rewards.shape)}"
        )
    if not rewards.is_floating_point():
        raise GroupInputError(f"{caller}: rewards must be a floating tensor, got dtype {rewards.dtype}")
    finite = torch.isfinite(rewards).all(dim=-1)  # [P]
    if not bool(finite.all()):
        bad = (~finite).nonzero().flatten().tolist()
        raise GroupInputError(
            f"{caller}: rewards of group {bad[0]} are not finite: {rewards[bad[0]].tolist()} "
            f"({len(bad)} group(s) with NaN/inf: {bad[:10]})"
        )


def check_outcomes(outcomes: torch.Tensor | None, rewards: torch.Tensor, caller: str, *, required: bool) -> None:
    """Outcomes, when given (or when `required`), must be an integer [P, G] tensor of `Outcome` codes."""
    if outcomes is None:
        if required:
            raise GroupInputError(
                f"{caller}: needs outcome labels (correct / wrong / uncertain / invalid) for every response, "
                f"got outcomes=None; pass outcomes_to_tensor([...RewardResult.outcome...], G)"
            )
        return
    if not isinstance(outcomes, torch.Tensor):
        raise GroupInputError(f"{caller}: outcomes must be a torch.Tensor, got {type(outcomes).__name__}")
    if tuple(outcomes.shape) != tuple(rewards.shape):
        raise GroupInputError(
            f"{caller}: outcomes shape {tuple(outcomes.shape)} does not match rewards shape {tuple(rewards.shape)}"
        )
    if outcomes.is_floating_point() or outcomes.is_complex() or outcomes.dtype == torch.bool:
        raise GroupInputError(f"{caller}: outcomes must be an integer tensor of Outcome codes, got {outcomes.dtype}")
    valid = ((outcomes >= min(Outcome)) & (outcomes <= max(Outcome))).all(dim=-1)  # [P]
    if not bool(valid.all()):
        p = int((~valid).nonzero()[0])
        raise GroupInputError(
            f"{caller}: outcomes of group {p} hold codes outside {[int(o) for o in Outcome]} "
            f"({', '.join(f'{o.name}={int(o)}' for o in Outcome)}): {outcomes[p].tolist()}"
        )


def in_reward_dtype(value: float, rewards: torch.Tensor) -> float:
    """`value` rounded to the rewards' dtype, for comparisons with rewards: float32(0.7) = 0.69999999 < 0.7,
    so a float32 reward of 0.7 only "reaches" a threshold of 0.7 after this rounding."""
    return torch.tensor(value, dtype=rewards.dtype).item()
