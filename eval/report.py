"""Reports of one run: results.json (every number and the config), report.md (tables), plots/*.png.

Plots (matplotlib, Agg backend, no display needed):
    plots/scores.png     per-task bars of accuracy (%), question-answering tasks
    plots/pass_at_k.png  pass@k against k on a log2 axis, one curve per task (when n_samples > 1)
    plots/football.png   mean accumulated reward per scenario, with the std over episodes as error bars
    plots/subsets_<task>.png  accuracy (%) per subset of a benchmark, one panel per subset field

report.md has, besides the task table: per task with a judge, how many answers the judge extracted and how
many fell back to the rules (and why); per benchmark, one table of its subsets (field, value, questions,
accuracy, and pass@k AUC when sampled) and the count of rows whose subset field was missing ("unknown").
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

QA_COLUMNS = (("accuracy", "acc %"), ("pass_at_k_auc", "pass@k AUC %"), ("ucpo_paq", "PAQ %"),
              ("ucpo_f1", "F1 %"), ("ucpo_abstention_rate", "abstain %"))


def pct(x: float) -> str:
    return f"{100 * x:.2f}"


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    tmp.replace(path)


def markdown(results: dict[str, Any]) -> str:
    cfg = results["config"]
    lines = [f"# Eval: {results['suite']}", "",
             f"model `{results['model']}` · backend {cfg['backend']} · n_samples "
             f"{cfg['n_samples']} · temperature {cfg['temperature']} · top_p {cfg['top_p']} · max_new_tokens "
             f"{cfg['max_new_tokens']} · {results['seconds']} s", ""]
    qa = [t for t in results["tasks"] if t["kind"] == "qa"]
    if qa:
        lines += ["| task | prompt | scored | excluded | " + " | ".join(c for _, c in QA_COLUMNS) + " |",
                  "|---|---|---:|---:|" + "---:|" * len(QA_COLUMNS)]
        for t in qa:
            m = t["metrics"]
            excluded = ", ".join(f"{k} {v}" for k, v in sorted(t["excluded"].items())) or "0"
            lines.append(f"| {t['name']} | {t['prompt']} | {t['scored']} | {excluded} | "
                         + " | ".join(pct(m[k]) for k, _ in QA_COLUMNS) + " |")
        lines.append("")
        passk = [t for t in qa if len(t["metrics"]["pass_at_k"]) > 1]
        if passk:
            ks = sorted({int(k) for t in passk for k in t["metrics"]["pass_at_k"]})
            lines += ["pass@k (%):", "", "| task | " + " | ".join(f"k={k}" for k in ks) + " |",
                      "|---|" + "---:|" * len(ks)]
            for t in passk:
                curve = t["metrics"]["pass_at_k"]
                lines.append(f"| {t['name']} | " + " | ".join(pct(curve[str(k)]) if str(k) in curve else "" for k in ks)
                             + " |")
            lines.append("")
        unans = [t for t in qa if "abstention_rate_unanswerable" in t["metrics"]]
        for t in unans:
            m = t["metrics"]
            lines.append(f"- {t['name']}: abstains on {pct(m['abstention_rate_unanswerable'])}% of unanswerable and "
                         f"{pct(m['abstention_rate_answerable'])}% of answerable samples")
        if unans:
            lines.append("")
        judged = [t for t in qa if t.get("extraction", {}).get("extractor") == "judge"]
        for t in judged:
            e = t["extraction"]
            reasons = ", ".join(f"{k} {v}" for k, v in e["fallback_reasons"].items())
            lines.append(f"- {t['name']}: judge `{e['judge_model']}` extracted {e['judge']} answer(s); {e['fallback']} "
                         f"fell back to the rules{f' ({reasons})' if reasons else ''}; {e['abstained']} abstained "
                         "(graded by the rules, the judge not asked)")
        if judged:
            lines.append("")
        for t in qa:
            for row in t["excluded_rows"]:
                lines.append(f"- excluded ({t['name']}): {row}")
        if any(t["excluded_rows"] for t in qa):
            lines.append("")
    for t in qa:
        lines += subset_markdown(t)
    for t in results["tasks"]:
        if t["kind"] != "football":
            continue
        lines += [f"Football ({t['name']}): mean accumulated reward over seeds {t['seeds']}, "
                  f"max_turns {t['max_turns']}",
                  "", "| scenario | episodes | mean reward | std | min | max | invalid turns % |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for scenario, s in t["scenarios"].items():
            lines.append(f"| {scenario} | {s['episodes']} | {s['mean_reward']:.3f} | {s['std_reward']:.3f} | "
                         f"{s['min_reward']:.3f} | {s['max_reward']:.3f} | {pct(s['invalid_turn_rate'])} |")
        lines.append("")
    if results["summary"]:
        lines += ["Summary (unweighted means over tasks):", ""]
        lines += [f"- {k}: {v:.4f}" for k, v in results["summary"].items()]
        lines.append("")
    return "\n".join(lines)


def subset_markdown(task: dict[str, Any]) -> list[str]:
    """The subset table of one task (nothing when it has no subsets)."""
    if not task.get("subsets"):
        return []
    sampled = any("pass_at_k_auc" in s for groups in task["subsets"].values() for s in groups.values())
    lines = [f"{task['name']} by subset:", "",
             "| field | subset | questions | acc % |" + (" pass@k AUC % |" if sampled else ""),
             "|---|---|---:|---:|" + ("---:|" if sampled else "")]
    for field, groups in task["subsets"].items():
        for value, scores in groups.items():
            auc = f" {pct(scores['pass_at_k_auc'])} |" if sampled and "pass_at_k_auc" in scores else \
                (" |" if sampled else "")
            lines.append(f"| {field} | {value} | {scores['questions']} | {pct(scores['accuracy'])} |{auc}")
    unknown = {f: c for f, c in task.get("subset_unknown", {}).items() if c}
    lines.append("")
    if unknown:
        lines += ["rows without a subset value (scored, counted as `unknown`): "
                  + ", ".join(f"{f} {c}" for f, c in unknown.items()), ""]
    return lines


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: Path, dpi: int) -> bool:
    """Lay out, write and close a figure; True (the plot functions' "written")."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return True


def task_score(task: dict[str, Any]) -> float:
    """The headline number of a task: accuracy in % (QA) or mean accumulated reward (football)."""
    return task["metrics"]["mean_reward"] if task["kind"] == "football" else 100 * task["metrics"]["accuracy"]


def plot_scores(runs: list[tuple[str, dict[str, Any]]], path: Path) -> bool:
    """Grouped bars of accuracy %: one group per question-answering task, one bar per run (a task missing
    from a run has no bar). False (nothing written) when no run has such a task."""
    names = list(dict.fromkeys(t["name"] for _, r in runs for t in r["tasks"] if t["kind"] == "qa"))
    if not names:
        return False
    plt = _pyplot()
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.0 * len(names) * max(1.0, len(runs) / 2)), 3.6))
    for j, (label, r) in enumerate(runs):
        by_name = {t["name"]: t for t in r["tasks"] if t["kind"] == "qa"}
        present = [i for i, n in enumerate(names) if n in by_name]
        xs = [i + (j - (len(runs) - 1) / 2) * width for i in present]
        bars = ax.bar(xs, [task_score(by_name[names[i]]) for i in present], width, label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("accuracy %")
    ax.set_ylim(0, 105)
    if len(runs) > 1:
        ax.legend(fontsize=8)
    return _save(plt, fig, path, dpi=110)


def plot_pass_at_k(runs: list[tuple[str, dict[str, Any]]], path: Path) -> bool:
    """pass@k against k (log2 axis) per task and run; False (nothing written) when no task has k > 1."""
    curves = [(label, t) for label, r in runs for t in r["tasks"]
              if t["kind"] == "qa" and len(t["metrics"]["pass_at_k"]) > 1]
    if not curves:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for label, t in curves:
        ks = sorted(int(k) for k in t["metrics"]["pass_at_k"])
        ax.plot(ks, [100 * t["metrics"]["pass_at_k"][str(k)] for k in ks], marker="o",
                label=f"{t['name']} ({label}) AUC {100 * t['metrics']['pass_at_k_auc']:.1f}" if len(runs) > 1
                else f"{t['name']} AUC {100 * t['metrics']['pass_at_k_auc']:.1f}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k")
    ax.set_ylabel("pass@k %")
    ax.legend(fontsize=7)
    return _save(plt, fig, path, dpi=110)


def plot_football(runs: list[tuple[str, dict[str, Any]]], path: Path) -> bool:
    """Mean accumulated reward per scenario (std over episodes as error bars), one bar per run."""
    per_run = []
    for label, r in runs:
        football = [t for t in r["tasks"] if t["kind"] == "football"]
        per_run.append((label, {(sc if len(football) == 1 else f"{t['name']}/{sc}"): stats
                                for t in football for sc, stats in t["scenarios"].items()}))
    names = list(dict.fromkeys(n for _, d in per_run for n in d))
    if not names:
        return False
    plt = _pyplot()
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.4 * len(names) * max(1.0, len(runs) / 2)), 3.6))
    for j, (label, d) in enumerate(per_run):
        present = [i for i, n in enumerate(names) if n in d]
        xs = [i + (j - (len(runs) - 1) / 2) * width for i in present]
        ax.bar(xs, [d[names[i]]["mean_reward"] for i in present], width,
               yerr=[d[names[i]]["std_reward"] for i in present], capsize=3, label=label)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=7)
    ax.set_ylabel("mean accumulated reward")
    ax.axhline(0, color="black", linewidth=0.5)
    if len(runs) > 1:
        ax.legend(fontsize=8)
    return _save(plt, fig, path, dpi=110)


def plot_subsets(task: dict[str, Any], path: Path) -> bool:
    """Horizontal bars of accuracy % per subset, one panel per subset field; False when the task has none."""
    fields = [(f, groups) for f, groups in (task.get("subsets") or {}).items() if groups]
    if not fields:
        return False
    plt = _pyplot()
    heights = [max(1.2, 0.28 * len(groups) + 0.6) for _, groups in fields]
    fig, axes = plt.subplots(len(fields), 1, figsize=(6.4, sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, (field, groups) in zip(axes[:, 0], fields):
        labels = [f"{v[:40]} ({s['questions']})" for v, s in groups.items()]
        bars = ax.barh(range(len(labels)), [100 * s["accuracy"] for s in groups.values()])
        ax.bar_label(bars, fmt="%.1f", fontsize=6)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, 112)
        ax.set_title(f"{task['name']}: {field}", fontsize=8)
    axes[-1, 0].set_xlabel("accuracy % (questions)")
    return _save(plt, fig, path, dpi=100)


def subset_plot_name(task_name: str) -> str:
    return "subsets_" + re.sub(r"[^0-9A-Za-z_.-]", "_", task_name) + ".png"


def write_plots(runs: list[tuple[str, dict[str, Any]]], plots_dir: Path) -> list[str]:
    plots_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if plot_scores(runs, plots_dir / "scores.png"):
        written.append("scores.png")
    if plot_pass_at_k(runs, plots_dir / "pass_at_k.png"):
        written.append("pass_at_k.png")
    if plot_football(runs, plots_dir / "football.png"):
        written.append("football.png")
    if len(runs) == 1:  # one run's report: a subset plot per benchmark (comparisons use the tables)
        for task in runs[0][1]["tasks"]:
            name = subset_plot_name(task["name"])
            if task["kind"] == "qa" and plot_subsets(task, plots_dir / name):
                written.append(name)
    return written


def write_report(results: dict[str, Any], out_dir: Path) -> None:
    if results["config"].get("plots", True):
        results["plots"] = [f"plots/{p}" for p in write_plots([(results["suite"], results)], out_dir / "plots")]
    write_json(out_dir / "results.json", results)
    md = markdown(results)
    if results.get("plots"):
        md += "\n" + "\n".join(f"![{p}]({p})" for p in results["plots"]) + "\n"
    (out_dir / "report.md").write_text(md)
