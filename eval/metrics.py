"""Evaluation metrics: small pure functions, the equation in each docstring.

Conventions (also in docs/eval.md):

- A benchmark is scored per *question*; question i has n_i samples of which c_i are correct. Greedy decoding is
  n_i = 1. Benchmark numbers are means over questions; suite averages are unweighted means over benchmarks
  (the papers average per-benchmark scores).
- pass@k is Chen et al. (2021)'s unbiased estimator; NGRPO's pass@k AUC is the trapezoid rule over
  k = 1, 2, 4, ..., 2^m <= n on a log2(k) axis, normalised by the axis length so it lies in [0, 1]
  (NGRPO's code reports it x 100: AUC = 100 (p1 + 2 p2 + ... + 2 p128 + p256) / (2 * 8) for n = 256).
- UCPO's metrics are over samples classified R (correct), W (wrong) and U (uncertain: the response abstains
  on an answerable question). An `invalid` response (no gradable answer) did not abstain, so it counts as W.
  On an unanswerable question (gold `[unanswerable]`) abstaining is R and answering is W (lmmr1.rewards).
  The papers' exact definitions are not public; ours:
      accuracy         = R / N
      PAQ              = R / (R + W)          precision over answered samples (0 when nothing was answered)
      F1               = 2 PAQ acc / (PAQ + acc)   harmonic mean of PAQ and accuracy (0 when both are 0)
      abstention rate  = U / N                UCPO's "uncertainty ratio"
- Subset breakdowns: the same accuracy (and pass@k when sampled) over the questions of one sub-category
  (e.g. MathVista's task "geometry problem solving"). A multi-label field (MathVista's skills) counts a
  question in every one of its labels, so its subsets overlap and their sizes sum to more than Q.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction


def accuracy(correct: Sequence[int], n: Sequence[int]) -> float:
    """Mean per-question accuracy: (1/Q) sum_i c_i / n_i. With greedy decoding (n_i = 1), the fraction correct."""
    if len(correct) != len(n):
        raise ValueError(f"accuracy: {len(correct)} correct counts but {len(n)} sample counts")
    if not n:
        return 0.0
    return sum(c / m for c, m in zip(correct, n)) / len(n)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one question (Chen et al. 2021, "Evaluating LLMs trained on code", eq. 1):

        pass@k = 1 - C(n - c, k) / C(n, k)        (1 when n - c < k)

    the probability that at least one of k samples drawn without replacement from the n is correct.
    Exact: the binomial ratio is computed in integers."""
    if not 0 <= c <= n:
        raise ValueError(f"pass_at_k: need 0 <= c <= n, got c={c}, n={n}")
    if not 1 <= k <= n:
        raise ValueError(f"pass_at_k: need 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    return float(1 - Fraction(math.comb(n - c, k), math.comb(n, k)))


def pass_at_k_mean(correct: Sequence[int], n: Sequence[int], k: int) -> float:
    """Benchmark pass@k: (1/Q) sum_i pass@k(n_i, c_i)."""
    if not n:
        return 0.0
    return sum(pass_at_k(m, c, k) for c, m in zip(correct, n)) / len(n)


def log2_ks(n: int) -> list[int]:
    """NGRPO's k grid: 1, 2, 4, ..., the largest power of two <= n (n = 256 gives the 9 values 1..256)."""
    if n < 1:
        raise ValueError(f"log2_ks: need n >= 1, got {n}")
    return [2**j for j in range(int(math.floor(math.log2(n))) + 1)]


def pass_at_k_curve(correct: Sequence[int], n: Sequence[int]) -> dict[int, float]:
    """pass@k for every k of `log2_ks(min n_i)`: {k: pass@k}."""
    if not n:
        return {}
    return {k: pass_at_k_mean(correct, n, k) for k in log2_ks(min(n))}


def pass_at_k_auc(curve: dict[int, float]) -> float:
    """NGRPO's pass@k area: trapezoid rule over x = log2(k) for k = 1, 2, 4, ..., K, divided by log2(K):

        AUC = (1 / log2 K) sum_{j=0}^{log2 K - 1} (p_{2^j} + p_{2^{j+1}}) / 2
            = (p_1 + 2 p_2 + ... + 2 p_{K/2} + p_K) / (2 log2 K)

    In [0, 1]; multiply by 100 for NGRPO's tables. With one point (K = 1) the area is that point, p_1."""
    ks = sorted(curve)
    if not ks:
        return 0.0
    if len(ks) == 1:
        return curve[ks[0]]
    xs = [math.log2(k) for k in ks]
    area = sum((xs[j + 1] - xs[j]) * (curve[ks[j]] + curve[ks[j + 1]]) / 2 for j in range(len(ks) - 1))
    return area / (xs[-1] - xs[0])


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def subset_breakdown(subsets: Sequence[dict], correct: Sequence[int], n: Sequence[int]) -> dict[str, dict]:
    """Per-subset scores: {field: {value: {"questions": Q_s, "accuracy": (1/Q_s) sum_{i in s} c_i / n_i,
    and, when every n_i > 1, "pass_at_k": {k: pass@k over s} and "pass_at_k_auc"}}}.

    `subsets[i]` is question i's {field: value or [values]} (eval.benchmarks' `meta["subsets"]`); a list
    puts the question in each of its values. Order: numerically when every value is a number (levels 1..5),
    else by size, largest first, then by name; "unknown" (a missing value) always last."""
    if not len(subsets) == len(correct) == len(n):
        raise ValueError(f"subset_breakdown: {len(subsets)} subset rows, {len(correct)} counts, {len(n)} sizes")
    members: dict[str, dict[str, list[int]]] = {}
    for i, row in enumerate(subsets):
        for field, value in row.items():
            for label in (value if isinstance(value, list) else [value]):
                members.setdefault(field, {}).setdefault(str(label), []).append(i)
    out: dict[str, dict] = {}
    for field, groups in members.items():
        out[field] = {}
        known = [label for label in groups if label != "unknown"]
        numeric = bool(known) and all(_is_number(label) for label in known)
        order = (lambda kv: (kv[0] == "unknown", float(kv[0]) if kv[0] != "unknown" else 0.0)) if numeric else \
            (lambda kv: (kv[0] == "unknown", -len(kv[1]), kv[0]))
        for label, idx in sorted(groups.items(), key=order):
            c, m = [correct[i] for i in idx], [n[i] for i in idx]
            scores: dict = {"questions": len(idx), "accuracy": accuracy(c, m)}
            if min(m) > 1:
                curve = pass_at_k_curve(c, m)
                scores["pass_at_k"] = {str(k): v for k, v in curve.items()}
                scores["pass_at_k_auc"] = pass_at_k_auc(curve)
            out[field][label] = scores
    return out


def ucpo_metrics(outcomes: Sequence[str]) -> dict[str, float]:
    """UCPO-style reliability metrics over graded samples (outcomes from lmmr1.rewards):

        R = #correct,  U = #uncertain,  W = #wrong + #invalid,  N = R + U + W
        accuracy = R / N,  PAQ = R / (R + W),  F1 = 2 PAQ acc / (PAQ + acc),  abstention_rate = U / N

    Returns {"accuracy", "paq", "f1", "abstention_rate"} (each 0 on an empty input)."""
    unknown = set(outcomes) - {"correct", "wrong", "uncertain", "invalid"}
    if unknown:
        raise ValueError(f"ucpo_metrics: unknown outcomes {sorted(unknown)}")
    N = len(outcomes)
    R = sum(o == "correct" for o in outcomes)
    U = sum(o == "uncertain" for o in outcomes)
    W = N - R - U
    acc = R / N if N else 0.0
    paq = R / (R + W) if R + W else 0.0
    f1 = 2 * paq * acc / (paq + acc) if paq + acc else 0.0
    return {"accuracy": acc, "paq": paq, "f1": f1, "abstention_rate": U / N if N else 0.0}


def episode_reward_stats(totals: Sequence[float]) -> dict[str, float]:
    """Football: mean accumulated reward over seeded episodes, (1/E) sum_e sum_t r_{e,t}, with the
    population std over episodes, min and max."""
    E = len(totals)
    if not E:
        return {"mean_reward": 0.0, "std_reward": 0.0, "min_reward": 0.0, "max_reward": 0.0, "episodes": 0}
    mean = sum(totals) / E
    std = math.sqrt(sum((t - mean) ** 2 for t in totals) / E)
    return {"mean_reward": mean, "std_reward": std, "min_reward": min(totals), "max_reward": max(totals),
            "episodes": E}
