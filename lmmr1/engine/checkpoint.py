"""Atomic, resumable checkpoints.

Layout of a run directory:

    run_dir/
      config.json            the resolved config        versions.json  packages + git revision
      metrics.jsonl          one line per step          tensorboard/   the same metrics as events
      checkpoints/step_000010/
        model/               HF checkpoint (model + processor): loadable as the next stage's model
        trainer_state.pt     optimizer, LR scheduler, RNG states, data position, step
        COMPLETE             written last: a directory without it is ignored
      final/                 HF checkpoint of the last step (what the next stage starts from)

Atomicity: a checkpoint is written into `checkpoints/.tmp-step_N/`, fsynced, then renamed to `step_N`
(rename is atomic on one filesystem); a process killed at any moment leaves either the previous complete
checkpoint or the new one, never half of one. Stale `.tmp-*` directories are removed on the next save.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch

STEP_DIR = re.compile(r"^step_(\d{6,})$")


def rng_state() -> dict:
    """Python, NumPy, torch CPU and (where present) CUDA generator states: the HF backend samples on the
    policy's device, so a resumed GPU run needs the CUDA generators' positions too."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync_tree(path: Path) -> None:
    """fsync every file under `path`, then its directories (their entries), deepest first."""
    entries = sorted(path.rglob("*"))
    for p in entries:
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
    for directory in sorted([path, *(p for p in entries if p.is_dir())], reverse=True):
        _fsync_dir(directory)


def _fsync_dir(path: Path) -> None:
    """Make a directory's entries (a rename into it) durable; a file system that refuses is left alone."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_hf(model, processor, out: Path) -> None:
    """HF checkpoint directory: weights + config + processor (tokenizer, image/video processors)."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)


def save_hf_atomic(model, processor, out: Path) -> Path:
    """`save_hf` into `.tmp-<name>` beside `out`, then rename over `out` (a crash leaves the old one or none)."""
    out = Path(out)
    tmp = out.with_name(f".tmp-{out.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    save_hf(model, processor, tmp)
    _fsync_tree(tmp)
    if out.exists():
        shutil.rmtree(out)
    os.rename(tmp, out)
    _fsync_dir(out.parent)
    return out


def save_checkpoint(run_dir: Path, step: int, model, processor, state: dict, keep_last: int = 2) -> Path:
    """Write checkpoints/step_{step} atomically and prune older ones (keeping `keep_last`)."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    final = root / f"step_{step:06d}"
    tmp = root / f".tmp-step_{step:06d}"
    save_hf(model, processor, tmp / "model")
    torch.save(state, tmp / "trainer_state.pt")
    (tmp / "COMPLETE").write_text(f"{step}\n")
    _fsync_tree(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.rename(tmp, final)
    _fsync_dir(root)
    for old in list_checkpoints(run_dir)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if STEP_DIR.match(p.name) and (p / "COMPLETE").is_file()]
    return sorted(found, key=lambda p: int(STEP_DIR.match(p.name).group(1)))


def resolve_resume(run_dir: Path, resume: str) -> Path | None:
    """`resume`: "auto" (latest complete checkpoint of run_dir, or none), "never", or a checkpoint path."""
    if resume == "never":
        return None
    if resume == "auto":
        found = list_checkpoints(run_dir)
        return found[-1] if found else None
    path = Path(resume)
    if not (path / "COMPLETE").is_file():
        raise FileNotFoundError(f"resume={resume}: not a complete lmmr1 checkpoint (no {path / 'COMPLETE'})")
    return path


def load_trainer_state(checkpoint: Path) -> dict:
    return torch.load(Path(checkpoint) / "trainer_state.pt", weights_only=False)
