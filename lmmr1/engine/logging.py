"""Metrics: one JSON line per step (`metrics.jsonl`) and TensorBoard events, under namespaces
`rollout/`, `reward/`, `train/`, `eval/`, `time/`."""

from __future__ import annotations

import json
import math
import time
from contextlib import contextmanager
from pathlib import Path


class MetricsLogger:
    def __init__(self, run_dir: Path, tensorboard: bool = True):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tensorboard_dir = Path(run_dir) / "tensorboard" if tensorboard else None
        self.writer = self._writer()

    def _writer(self, purge_step: int | None = None):
        if self.tensorboard_dir is None:
            return None
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(str(self.tensorboard_dir), purge_step=purge_step)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        clean = {k: (float(v) if isinstance(v, (int, float)) else v) for k, v in metrics.items()}
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": step, **clean}, sort_keys=True) + "\n")
        if self.writer is not None:
            for key, value in clean.items():
                if isinstance(value, float) and math.isfinite(value):
                    self.writer.add_scalar(key, value, step)
            self.writer.flush()

    def truncate_after(self, step: int) -> None:
        """On resume: drop lines of steps after the checkpoint (they were not saved) so the log is one run;
        TensorBoard is told the same (its readers discard the earlier run's events from step + 1 on)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = self._writer(purge_step=step + 1)
        if not self.path.exists():
            return
        lines = [ln for ln in self.path.read_text().splitlines() if ln and json.loads(ln)["step"] <= step]
        self.path.write_text("".join(ln + "\n" for ln in lines))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class PhaseTimer:
    """Wall time per phase of a step: `with timer("rollout"): ...` -> {"time/rollout": seconds}."""

    def __init__(self):
        self.times: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.times[f"time/{phase}"] = self.times.get(f"time/{phase}", 0.0) + time.perf_counter() - start
