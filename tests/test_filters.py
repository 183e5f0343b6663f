"""Group filters: each drops exactly the groups it should and reports why."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmmr1.algorithms import FILTERS, FilterConfig, GroupInputError, Outcome, get_estimator, get_filter

C, W, U, I = (int(o) for o in (Outcome.CORRECT, Outcome.WRONG, Outcome.UNCERTAIN, Outcome.INVALID))

# One group per row, G = 3; the comment says which filter drops it and why.
OUTCOMES = torch.tensor([
    [C, C, C],  # 0 all correct        NGRPO: all_correct  DAPO: all_correct   UCPO: no_wrong
    [W, W, W],  # 1 all wrong          NGRPO: kept         DAPO: none_correct  UCPO: no_correct
    [C, W, W],  # 2 mixed              kept by all
    [U, U, U],  # 3 all uncertain      NGRPO: kept         DAPO: none_correct  UCPO: no_correct
    [C, U, U],  # 4 correct+uncertain  NGRPO: kept         DAPO: kept          UCPO: no_wrong
    [W, U, I],  # 5 wrong+uncertain    NGRPO: kept         DAPO: none_correct  UCPO: no_correct
    [C, U, W],  # 6 ternary            kept by all
    [C, I, I],  # 7 correct+invalid    kept by all (invalid counts as wrong for UCPO)
])  # fmt: skip
REWARDS = (OUTCOMES == C).float()  # 0/1 verifier


def test_none_keeps_everything() -> None:
    report = get_filter("none")(REWARDS, OUTCOMES)
    assert report.keep.all() and report.num_dropped == 0 and report.dropped == {}


def test_drop_all_correct() -> None:
    report = get_filter("drop_all_correct")(REWARDS, OUTCOMES)
    assert report.dropped == {"all_correct": [0]}
    assert report.keep.tolist() == [False] + [True] * 7
    # without outcomes: correct = reward >= r_max; same answer on a 0/1 verifier
    assert get_filter("drop_all_correct")(REWARDS).dropped == {"all_correct": [0]}
    # r_max matters without outcomes: with rewards in {0, 0.5} and r_max = 0.5 a group of 0.5s is all correct
    report = get_filter("drop_all_correct")(torch.tensor([[0.5, 0.5], [0.5, 0.0]]), None, FilterConfig(r_max=0.5))
    assert report.dropped == {"all_correct": [0]}
    # float32(0.7) = 0.69999999 < 0.7: r_max is compared in the rewards' dtype, so 0.7s are all correct
    report = get_filter("drop_all_correct")(torch.tensor([[0.7, 0.7], [0.7, 0.0]]), None, FilterConfig(r_max=0.7))
    assert report.dropped == {"all_correct": [0]}


def test_drop_homogeneous() -> None:
    report = get_filter("drop_homogeneous")(REWARDS, OUTCOMES)
    assert report.dropped == {"all_correct": [0], "none_correct": [1, 3, 5]}
    assert report.keep.tolist() == [False, False, True, False, True, False, True, True]
    assert report.num_groups == 8 and report.num_dropped == 4


def test_non_ternary_filter_drops_exactly_the_non_ternary_groups() -> None:
    report = get_filter("non_ternary")(REWARDS, OUTCOMES)
    assert report.dropped == {"no_correct": [1, 3, 5], "no_wrong": [0, 4]}
    assert report.keep.tolist() == [False, False, True, False, False, False, True, True]


@settings(max_examples=30, deadline=None)
@given(G=st.integers(1, 16), seed=st.integers(0, 2**31 - 1))
def test_non_ternary_agrees_with_ucpo_keep_and_a_naive_loop(G: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    outcomes = torch.randint(0, 4, (12, G), generator=gen)  # [P, G]
    rewards = (outcomes == C).float()
    report = get_filter("non_ternary")(rewards, outcomes)
    naive = [C in row and (W in row or I in row) for row in outcomes.tolist()]
    assert report.keep.tolist() == naive
    _, keep = get_estimator("ucpo")(rewards, outcomes)
    assert torch.equal(report.keep, keep)
    # every dropped group is reported exactly once
    dropped = sorted(report.dropped["no_correct"] + report.dropped["no_wrong"])
    assert dropped == [p for p, kept in enumerate(naive) if not kept]


@settings(max_examples=30, deadline=None)
@given(G=st.integers(1, 16), seed=st.integers(0, 2**31 - 1))
def test_drop_homogeneous_keeps_exactly_groups_where_grpo_has_signal(G: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    rewards = (torch.rand(12, G, generator=gen) < 0.5).float()  # [P, G] 0/1
    report = get_filter("drop_homogeneous")(rewards)
    A, _ = get_estimator("group_norm")(rewards)
    assert report.keep.tolist() == (A.abs().sum(-1) > 0).tolist()


def test_report_metrics() -> None:
    metrics = get_filter("drop_homogeneous")(REWARDS, OUTCOMES).metrics()
    assert metrics == {
        "rollout/filter_kept_fraction": 0.5,  # 4 of 8 kept
        "rollout/filter_dropped_all_correct": 1.0,
        "rollout/filter_dropped_none_correct": 3.0,
    }


def test_registry_and_bad_input() -> None:
    assert set(FILTERS) == {"none", "drop_all_correct", "drop_homogeneous", "non_ternary"}
    with pytest.raises(KeyError, match=r"unknown group filter 'dapo'; valid names: \['drop_all_correct'"):
        get_filter("dapo")
    with pytest.raises(GroupInputError, match=r"filter non_ternary: needs outcome labels"):
        get_filter("non_ternary")(REWARDS)
    bad = REWARDS.clone()
    bad[5, 1] = float("nan")
    with pytest.raises(GroupInputError, match=r"filter drop_all_correct: rewards of group 5 are not finite"):
        get_filter("drop_all_correct")(bad, OUTCOMES)


def test_group_composition_counts_correct_responses_per_group() -> None:
    from lmmr1.algorithms import group_composition

    groups = group_composition(REWARDS, OUTCOMES, r_max=1.0)
    assert groups["all_correct"].tolist() == [True] + [False] * 7
    assert groups["none_correct"].tolist() == [False, True, False, True, False, True, False, False]
    assert groups["mixed"].tolist() == [False, False, True, False, True, False, True, True]
    # the same masks DAPO's filter drops on, and from rewards alone on a 0/1 verifier
    dapo = get_filter("drop_homogeneous")(REWARDS, OUTCOMES)
    assert groups["mixed"].tolist() == dapo.keep.tolist()
    assert all(torch.equal(groups[k], group_composition(REWARDS, None, 1.0)[k]) for k in groups)
