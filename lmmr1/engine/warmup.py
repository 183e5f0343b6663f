"""Format warm-up: a few supervised steps that teach a random model the response format before RL.

The tiny Qwen2.5-VL is random: it never writes `<think>..</think><answer>\\boxed{..}</answer>`, so every
LMM-R1 reward (0.5 x strict format + accuracy) is 0, every group is homogeneous and GRPO has no signal. A
real Qwen2.5-VL-Instruct already follows the system prompt; this warm-up stands in for that instruction
tuning on the embedded default only (paper configs set `warmup.steps: 0`).

    loss = - sum_t m_t log pi(y_t | x, y_<t) / sum_t m_t

over well-formed responses y to the *training* questions x (the held-out set is never seen), with m the
response mask (prompt tokens masked out; the closing `<|im_end|>` is trained so the model learns to stop).
The response is

    <think>The answer is {gold}.</think><answer>\\boxed{gold}</answer><|im_end|>

(for an unanswerable record: `... <answer>I don't know</answer>`). The gold answer is in the response, so this
is plain SFT on the training answers: whatever it teaches beyond the format is memorisation of training
questions, which the held-out eval does not reward.

Prompts are built exactly as the engine builds them (`lmmr1.engine.data.prepare` -> `encode_prompt`, the same
processor and image sizing), batched by `lmmr1.models.forward.collate`, scored by `token_logprobs`.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from pathlib import Path

import torch

from lmmr1.data.records import UNANSWERABLE
from lmmr1.models.forward import collate, token_logprobs

log = logging.getLogger("lmmr1.engine.warmup")


def target_response(answer: str) -> str:
    """The well-formed response the warm-up teaches for a gold `answer`."""
    if answer == UNANSWERABLE:
        return "<think>The question does not give enough information.</think><answer>I don't know</answer>"
    return f"<think>The answer is {answer}.</think><answer>\\boxed{{{answer}}}</answer>"


def format_warmup(model_dir: Path, train_files: list[str], out_dir: Path, *, steps: int, batch_size: int, lr: float,
                  seed: int = 0, freeze_vision: bool = True, max_prompt_len: int = 1024,
                  allow_remote_images: bool = False) -> dict[str, float]:
    """`steps` cross-entropy updates on target responses to training records; saves an HF checkpoint to
    `out_dir` (model + processor) and returns `{"warmup/loss_first": .., "warmup/loss_last": ..}`."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from lmmr1.data.images import ImageConfig
    from lmmr1.engine.checkpoint import save_hf_atomic
    from lmmr1.engine.data import prepare, read_rows

    torch.manual_seed(seed)
    processor = AutoProcessor.from_pretrained(model_dir)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    policy = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).to(device)
    if freeze_vision:
        for param in policy.model.visual.parameters():
            param.requires_grad_(False)
    policy.train()
    tokenizer = processor.tokenizer
    eos_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    image_config = ImageConfig.from_processor(processor, allow_remote=allow_remote_images)

    rows = read_rows(train_files, Counter())
    if not rows:
        raise ValueError(f"format warm-up: no usable record in {train_files}")
    rng = random.Random(seed)
    order: list[int] = []
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=lr)
    cache: dict[int, tuple] = {}
    losses: list[float] = []
    for _step in range(steps):
        batch_prompts, batch_responses = [], []
        while len(batch_prompts) < batch_size:
            if not order:
                order = list(range(len(rows)))
                rng.shuffle(order)
            i = order.pop()
            if i not in cache:
                try:
                    prompt = prepare(rows[i], processor, image_config, max_prompt_len)
                except Exception as err:  # a bad record is skipped here as the engine skips it
                    log.warning("%s: skipped in warm-up: %s", rows[i].where, err)
                    cache[i] = None
                    if all(cache.get(j, 0) is None for j in range(len(rows))):
                        raise ValueError(f"format warm-up: no record of {train_files} can be used") from err
                    continue
                response = tokenizer(target_response(rows[i].record.answer), add_special_tokens=False).input_ids
                cache[i] = (prompt.encoded, response + [eos_id])
            if cache[i] is None:
                continue
            batch_prompts.append(cache[i][0])
            batch_responses.append(cache[i][1])
        input_ids, attention_mask, action_mask, mm = collate(batch_prompts, batch_responses, tokenizer.pad_token_id,
                                                             device)
        logprobs = token_logprobs(policy, input_ids, attention_mask, mm)  # [B, T-1]
        loss = -(logprobs * action_mask).sum() / action_mask.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in policy.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        losses.append(loss.item())
    save_hf_atomic(policy, processor, Path(out_dir))
    return {"warmup/steps": float(steps), "warmup/loss_first": losses[0] if losses else float("nan"),
            "warmup/loss_last": losses[-1] if losses else float("nan")}
