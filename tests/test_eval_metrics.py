"""eval.metrics: pass@k and its log2 AUC against hand-computed values (c = 0 and c = n included) and a brute-force
enumeration; UCPO's PAQ / F1 / abstention rate on a worked example; football's episode mean."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest

from eval import metrics as M


def brute_pass_at_k(n: int, c: int, k: int) -> Fraction:
    """Fraction of k-subsets of n samples (the first c correct) holding at least one correct sample."""
    subsets = list(itertools.combinations(range(n), k))
    return Fraction(sum(any(i < c for i in s) for s in subsets), len(subsets))


# A small table, n = 4 samples per question, c = 0, 1, 2, 4 correct:
#   c = 0: pass@1 = pass@2 = pass@4 = 0
#   c = 1: pass@1 = 1 - C(3,1)/C(4,1) = 1/4;  pass@2 = 1 - C(3,2)/C(4,2) = 1 - 3/6 = 1/2;  pass@4 = 1 (n - c < k)
#   c = 2: pass@1 = 1 - C(2,1)/C(4,1) = 1/2;  pass@2 = 1 - C(2,2)/C(4,2) = 5/6;         pass@4 = 1
#   c = 4: 1, 1, 1
TABLE = {0: (0, 0, 0), 1: (Fraction(1, 4), Fraction(1, 2), 1), 2: (Fraction(1, 2), Fraction(5, 6), 1), 4: (1, 1, 1)}


@pytest.mark.parametrize("c", sorted(TABLE))
def test_pass_at_k_hand_table(c):
    for k, expected in zip((1, 2, 4), TABLE[c]):
        assert M.pass_at_k(4, c, k) == pytest.approx(float(expected), abs=1e-15)
        assert M.pass_at_k(4, c, k) == pytest.approx(float(brute_pass_at_k(4, c, k)), abs=1e-15)


def test_pass_at_k_matches_brute_force_on_every_small_case():
    for n in range(1, 8):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert M.pass_at_k(n, c, k) == pytest.approx(float(brute_pass_at_k(n, c, k)), abs=1e-12), (n, c, k)


def test_pass_at_1_is_accuracy_and_bad_arguments_raise():
    correct, n = [0, 3, 8, 5], [8, 8, 8, 8]
    assert M.pass_at_k_mean(correct, n, 1) == pytest.approx(M.accuracy(correct, n)) == pytest.approx(16 / 32)
    with pytest.raises(ValueError):
        M.pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        M.pass_at_k(4, 2, 5)


def test_curve_and_auc_on_the_table():
    # Benchmark means over the four questions: p1 = (0 + 1/4 + 1/2 + 1)/4 = 7/16, p2 = (0 + 1/2 + 5/6 + 1)/4 = 7/12,
    # p4 = 3/4. Trapezoid on x = log2 k = 0, 1, 2, divided by the axis length 2:
    #   AUC = (p1 + 2 p2 + p4) / (2 * 2) = (21/48 + 56/48 + 36/48) / 4 = 113/192.
    correct, n = list(TABLE), [4] * 4
    curve = M.pass_at_k_curve(correct, n)
    assert list(curve) == [1, 2, 4]
    assert curve[1] == pytest.approx(7 / 16) and curve[2] == pytest.approx(7 / 12) and curve[4] == pytest.approx(0.75)
    assert M.pass_at_k_auc(curve) == pytest.approx(113 / 192, abs=1e-12)


def test_auc_ngrpo_grid_and_edges():
    assert M.log2_ks(256) == [1, 2, 4, 8, 16, 32, 64, 128, 256]  # NGRPO's 9 points
    assert M.log2_ks(6) == [1, 2, 4]  # the largest power of two <= n
    # NGRPO's closed form for n = 256: 100 (p1 + 2 p2 + ... + 2 p128 + p256) / (2 * 8).
    curve = {k: math.log2(k) / 8 for k in M.log2_ks(256)}  # a line from 0 to 1: area 1/2
    assert M.pass_at_k_auc(curve) == pytest.approx(0.5)
    closed = (curve[1] + 2 * sum(curve[k] for k in M.log2_ks(128)[1:]) + curve[256]) / (2 * 8)
    assert M.pass_at_k_auc(curve) == pytest.approx(closed)
    assert M.pass_at_k_auc({1: 0.3}) == 0.3  # greedy: the area is pass@1
    assert M.pass_at_k_auc(M.pass_at_k_curve([0, 0], [4, 4])) == 0.0  # c = 0 everywhere
    assert M.pass_at_k_auc(M.pass_at_k_curve([4, 4], [4, 4])) == 1.0  # c = n everywhere


def test_ucpo_worked_example():
    # 10 samples: 5 correct (R), 2 wrong + 1 invalid (W = 3), 2 abstentions (U).
    #   accuracy = 5/10;  PAQ = R / (R + W) = 5/8;  F1 = 2 (5/8)(1/2) / (5/8 + 1/2) = (5/8) / (9/8) = 5/9;  U/N = 0.2
    outcomes = ["correct"] * 5 + ["wrong"] * 2 + ["invalid"] + ["uncertain"] * 2
    m = M.ucpo_metrics(outcomes)
    assert m == pytest.approx({"accuracy": 0.5, "paq": 0.625, "f1": 5 / 9, "abstention_rate": 0.2})
    # Abstaining more raises PAQ but not accuracy: 5 correct, 1 wrong, 4 uncertain:
    #   PAQ = 5/6, F1 = 2 (5/6)(1/2) / (4/3) = 5/8.
    m2 = M.ucpo_metrics(["correct"] * 5 + ["wrong"] + ["uncertain"] * 4)
    assert m2 == pytest.approx({"accuracy": 0.5, "paq": 5 / 6, "f1": 5 / 8, "abstention_rate": 0.4})
    # All abstentions: nothing answered, PAQ and F1 are 0 (the reward-hacking collapse UCPO reports as F1 9.01).
    assert M.ucpo_metrics(["uncertain"] * 3) == {"accuracy": 0.0, "paq": 0.0, "f1": 0.0, "abstention_rate": 1.0}
    with pytest.raises(ValueError):
        M.ucpo_metrics(["right"])


def test_episode_reward_stats():
    # Three seeded episodes: mean (40 - 2 + 1)/3 = 13; population std sqrt(((27)^2 + (-15)^2 + (-12)^2)/3) = sqrt(366).
    s = M.episode_reward_stats([40.0, -2.0, 1.0])
    assert s["mean_reward"] == pytest.approx(13.0)
    assert s["std_reward"] == pytest.approx(math.sqrt(366))
    assert (s["min_reward"], s["max_reward"], s["episodes"]) == (-2.0, 40.0, 3)


def test_subset_breakdown_exact():
    # Three questions, 4 samples each: c = 4, 1, 0. Question 0 is in skills a and b (multi-label), 1 in a, 2 in b;
    # task: 0 and 1 are "x", 2 is "unknown".
    subsets = [{"task": "x", "skills": ["a", "b"]}, {"task": "x", "skills": ["a"]},
               {"task": "unknown", "skills": ["b"]}]
    out = M.subset_breakdown(subsets, [4, 1, 0], [4, 4, 4])
    # task x: accuracy (1 + 1/4)/2 = 0.625; pass@2: q0 = 1, q1 = 1 - C(3,2)/C(4,2) = 1 - 3/6 = 0.5 -> 0.75;
    # pass@4: q0 = 1, q1 = 1 -> 1. AUC over log2 k = 0, 1, 2: (p1 + 2 p2 + p4) / (2 * 2) = (0.625 + 1.5 + 1) / 4.
    x = out["task"]["x"]
    assert x["questions"] == 2 and x["accuracy"] == 0.625
    assert x["pass_at_k"] == {"1": 0.625, "2": 0.75, "4": 1.0}
    assert x["pass_at_k_auc"] == pytest.approx((0.625 + 1.5 + 1.0) / 4)
    assert out["task"]["unknown"] == {"questions": 1, "accuracy": 0.0, "pass_at_k": {"1": 0.0, "2": 0.0, "4": 0.0},
                                      "pass_at_k_auc": 0.0}
    # skills overlap: a = {q0, q1}, b = {q0, q2}; sizes sum to 4 > 3 questions.
    assert out["skills"]["a"]["accuracy"] == 0.625 and out["skills"]["b"]["accuracy"] == 0.5
    assert list(out["task"]) == ["x", "unknown"]
    order = M.subset_breakdown([{"t": v} for v in ["b", "a", "unknown", "b", "c", "a", "unknown", "unknown"]],
                               [0] * 8, [1] * 8)
    assert list(order["t"]) == ["a", "b", "c", "unknown"]  # largest first, ties by name, a missing value last
    levels = M.subset_breakdown([{"level": v} for v in ["10", "2", "unknown", "2", "1"]], [0] * 5, [1] * 5)
    assert list(levels["level"]) == ["1", "2", "10", "unknown"]  # numbers in numeric order
    greedy = M.subset_breakdown([{"level": "1"}, {"level": "2"}, {"level": "1"}], [1, 0, 0], [1, 1, 1])
    assert greedy == {"level": {"1": {"questions": 2, "accuracy": 0.5}, "2": {"questions": 1, "accuracy": 0.0}}}
    with pytest.raises(ValueError, match="subset rows"):
        M.subset_breakdown([{}], [1, 0], [1, 1])
