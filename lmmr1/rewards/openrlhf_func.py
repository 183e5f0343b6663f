"""OpenRLHF 0.11 `reward_func` adapter: pass this file as `--reward.remote_url .../openrlhf_func.py`.

OpenRLHF calls `reward_func(queries, prompts, labels, **kwargs)` per sample in a thread inside the vLLM
engine actor and reads a dict {"rewards": Tensor, "scores": Tensor, "extra_logs": {name: Tensor}}
(openrlhf 0.11.2 `openrlhf/utils/agent.py`). `queries` are decoded prompt+response with special tokens;
the response is cut out with `extract_response` (split on the assistant turn, never `query[len(prompt):]`).
`labels` are the records' answers (`--data.label_key answer`), or the `label` column of
data_pipelines.to_openrlhf (`--data.label_key label`): a JSON object {"answer": ..., "meta": {...}} that also
carries the record's meta, which the game rewards read (football snapshot, Sokoban level). The reward is
chosen by the environment variable LMMR1_REWARD (default "lmm_r1"), its settings by LMMR1_REWARD_ARGS (a JSON
object of lmmr1.rewards.RewardConfig fields), its math-verify timeout by LMMR1_VERIFY_TIMEOUT_S (default 5).

Scores for OpenRLHF's dynamic filtering are 1.0 for outcome "correct", else 0.0. Extra logs carry the
outcome indicators and the timeout flag, so per-outcome fractions appear in OpenRLHF's metrics.
"""

from __future__ import annotations

import json
import os
import threading

from lmmr1.data.records import Record
from lmmr1.rewards.base import RewardConfig, RewardFn, get_reward
from lmmr1.rewards.rules import extract_response

_REWARD: RewardFn | None = None
_LOCK = threading.Lock()


def _reward() -> RewardFn:
    global _REWARD
    with _LOCK:
        if _REWARD is None:
            fields = {"verify_timeout_s": float(os.environ.get("LMMR1_VERIFY_TIMEOUT_S", "5")),
                      **json.loads(os.environ.get("LMMR1_REWARD_ARGS") or "{}")}
            config = RewardConfig(**fields)
            _REWARD = get_reward(os.environ.get("LMMR1_REWARD", "lmm_r1"), config)
        return _REWARD


def record_from_label(label) -> Record:
    """The record a reward needs: the gold answer, plus the meta when the label is to_openrlhf's JSON label."""
    answer, meta = str(label), {}
    if answer.startswith("{"):
        try:
            decoded = json.loads(answer)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict) and "answer" in decoded:
            answer, meta = str(decoded["answer"]), dict(decoded.get("meta") or {})
    return Record(messages=[{"role": "user", "content": ""}], answer=answer, source="openrlhf", meta=meta)


def reward_func(queries, prompts, labels, **kwargs):
    import torch

    reward = _reward()
    totals, scores = [], []
    logs: dict[str, list[float]] = {"correct": [], "wrong": [], "uncertain": [], "invalid": [], "timeout": []}
    for query, prompt, label in zip(queries, prompts, labels):
        response = extract_response(query, prompt)
        record = record_from_label(label)
        result = reward(response if response is not None else "", record)
        totals.append(result.total)
        scores.append(1.0 if result.outcome == "correct" else 0.0)
        for outcome in ("correct", "wrong", "uncertain", "invalid"):
            logs[outcome].append(float(result.outcome == outcome))
        logs["timeout"].append(float(result.timed_out))
    return {
        "rewards": torch.tensor(totals, dtype=torch.float32),
        "scores": torch.tensor(scores, dtype=torch.float32),
        "extra_logs": {f"reward_{k}": torch.tensor(v, dtype=torch.float32) for k, v in logs.items()},
    }
