"""The short report written into a run directory after each stage: report.md + PNG curves.

    reward.png      reward/mean per step (train rollouts), with reward/accuracy on a second panel
    accuracy.png    eval/accuracy (greedy, held-out) at every eval step, and train accuracy for comparison

Read from `metrics.jsonl` (one JSON object per logged step) and `stage_summary.json`. Matplotlib's Agg
backend: no display needed.
"""

from __future__ import annotations

import json
from pathlib import Path


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    points = [(r["step"], r[key]) for r in rows if key in r]
    return [p[0] for p in points], [p[1] for p in points]


def plot(run_dir: Path, rows: list[dict]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax1.plot(*series(rows, "reward/mean"), marker=".", label="reward/mean")
    ax1.set_xlabel("step"), ax1.set_ylabel("reward"), ax1.set_title("train reward"), ax1.legend()
    ax2.plot(*series(rows, "reward/accuracy"), marker=".", color="tab:green", label="reward/accuracy")
    ax2.set_xlabel("step"), ax2.set_ylabel("fraction correct"), ax2.set_title("train accuracy"), ax2.legend()
    fig.tight_layout()
    fig.savefig(run_dir / "reward.png", dpi=80)
    plt.close(fig)
    out.append(run_dir / "reward.png")

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(*series(rows, "eval/accuracy"), marker="o", label="eval/accuracy (held-out, greedy)")
    ax.plot(*series(rows, "reward/accuracy"), alpha=0.5, label="reward/accuracy (train samples)")
    ax.set_xlabel("step"), ax.set_ylabel("accuracy"), ax.set_ylim(-0.02, 1.02), ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(run_dir / "accuracy.png", dpi=80)
    plt.close(fig)
    out.append(run_dir / "accuracy.png")
    return out


def write_report(run_dir: Path, summary: dict | None = None) -> Path:
    """report.md (+ the plots) for the stage in `run_dir`; returns the report's path."""
    run_dir = Path(run_dir)
    summary = summary or {}
    rows = read_metrics(run_dir)
    plots = plot(run_dir, rows) if rows else []
    steps, acc = series(rows, "eval/accuracy")
    _, eval_reward = series(rows, "eval/reward_mean")
    _, train_reward = series(rows, "reward/mean")
    fmt = lambda xs, i: f"{xs[i]:.3f}" if xs else "n/a"  # noqa: E731
    lines = [f"# Stage {summary.get('stage', '?')}: {run_dir}", ""]
    lines.append(f"- Started from: {summary.get('init', '?')}")
    if "eval_before_warmup" in summary:
        lines.append(f"- Held-out accuracy before the format warm-up: {summary['eval_before_warmup']['eval/accuracy']:.3f}"
                     f" (reward {summary['eval_before_warmup']['eval/reward_mean']:.3f})")
    if "warmup" in summary:
        w = summary["warmup"]
        lines.append(f"- Format warm-up: {int(w['warmup/steps'])} SFT steps, loss {w['warmup/loss_first']:.3f} -> "
                     f"{w['warmup/loss_last']:.3f}")
    lines += [
        f"- Held-out accuracy before RL (step {steps[0] if steps else '-'}): {fmt(acc, 0)} (reward {fmt(eval_reward, 0)})",
        f"- Held-out accuracy after RL (step {steps[-1] if steps else '-'}): {fmt(acc, -1)} (reward {fmt(eval_reward, -1)})",
        f"- Train reward, first step -> last step: {fmt(train_reward, 0)} -> {fmt(train_reward, -1)}",
        f"- Final checkpoint (HF, model + processor; the next stage's `stage.init_from`): "
        f"{summary.get('final_checkpoint', run_dir / 'final')}",
        "",
        "| step | eval/accuracy | eval/reward_mean |",
        "|---|---|---|",
        *[f"| {s} | {a:.3f} | {r:.3f} |" for s, a, r in zip(steps, acc, eval_reward)],
        "",
        *[f"![{p.stem}]({p.name})" for p in plots],
        "",
        *[f"- Eval suite `{name}`: {json.dumps(r['summary'], sort_keys=True)} (report: {r['report']})"
          for name, r in (summary.get("eval_suites") or {}).items()],
        "",
        "Metrics: metrics.jsonl; resolved config: config.json; versions and git revision: versions.json.",
        "",
    ]
    report = run_dir / "report.md"
    report.write_text("\n".join(lines))
    return report
