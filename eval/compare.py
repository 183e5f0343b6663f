"""Compare two or more eval runs: `python -m eval.compare RUN1 RUN2 [...] [--out DIR] [--labels a,b,...]`.

Each RUN is a result folder written by `python -m eval.run` (it holds results.json). Writes into --out
(default: compare/ inside the last run's folder): comparison.json, comparison.md (one row per task and
metric, one column per run, and the change from the first run to the last; a benchmark's subsets add
one accuracy row each, named "<task> · <field>=<value>"), plots/scores.png (grouped bars:
the before/after-stage plot), plots/pass_at_k.png and plots/football.png when the runs have them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from eval.report import pct, write_json, write_plots

# (key in a task's metrics, label, shown as a percentage)
METRICS = (("accuracy", "acc %", True), ("pass_at_k_auc", "pass@k AUC %", True), ("ucpo_paq", "PAQ %", True),
           ("ucpo_f1", "F1 %", True), ("ucpo_abstention_rate", "abstain %", True),
           ("mean_reward", "mean reward", False))


def load_run(path: str | Path) -> dict[str, Any]:
    file = Path(path) / "results.json" if Path(path).is_dir() else Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{path}: no results.json (run `python -m eval.run ... --out {path}` first)")
    return json.loads(file.read_text())


def comparison_table(runs: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Rows {task, metric, values: {label: value or None}, delta: last - first (None when either is missing)}."""
    names = list(dict.fromkeys(t["name"] for _, r in runs for t in r["tasks"]))
    rows = []
    for name in names:
        for key, label, _ in METRICS:
            values = {}
            for run_label, r in runs:
                task = next((t for t in r["tasks"] if t["name"] == name), None)
                values[run_label] = task["metrics"].get(key) if task else None
            if all(v is None for v in values.values()):
                continue
            first, last = values[runs[0][0]], values[runs[-1][0]]
            rows.append({"task": name, "metric": key, "label": label, "values": values,
                         "delta": None if first is None or last is None else last - first})
        rows += subset_rows(runs, name)
    return rows


def subset_rows(runs: list[tuple[str, dict[str, Any]]], name: str) -> list[dict[str, Any]]:
    """Accuracy per subset of task `name` (task "<name> · <field>=<value>"), for subsets of any run."""
    tasks = {label: next((t for t in r["tasks"] if t["name"] == name), None) for label, r in runs}
    keys = list(dict.fromkeys((field, value) for t in tasks.values() if t for field, groups in
                              (t.get("subsets") or {}).items() for value in groups))
    rows = []
    for field, value in keys:
        values = {label: ((t.get("subsets") or {}).get(field, {}).get(value) or {}).get("accuracy") if t else None
                  for label, t in tasks.items()}
        first, last = values[runs[0][0]], values[runs[-1][0]]
        rows.append({"task": f"{name} · {field}={value}", "metric": "accuracy", "label": "acc %", "values": values,
                     "delta": None if first is None or last is None else last - first})
    return rows


def markdown(runs: list[tuple[str, dict[str, Any]]], rows: list[dict[str, Any]]) -> str:
    labels = [label for label, _ in runs]
    scale = {key: as_pct for key, _, as_pct in METRICS}
    fmt = lambda key, v: "—" if v is None else (pct(v) if scale[key] else f"{v:.3f}")  # noqa: E731
    lines = ["# Eval comparison", ""]
    lines += [f"- {label}: `{r['model']}` (suite {r['suite']}, n_samples {r['config']['n_samples']}, "
              f"temperature {r['config']['temperature']})" for label, r in runs]
    lines += ["", "| task | metric | " + " | ".join(labels) + f" | Δ ({labels[-1]} − {labels[0]}) |",
              "|---|---|" + "---:|" * (len(labels) + 1)]
    for row in rows:
        delta = "—" if row["delta"] is None else (f"{100 * row['delta']:+.2f}" if scale[row["metric"]]
                                                  else f"{row['delta']:+.3f}")
        lines.append(f"| {row['task']} | {row['label']} | " + " | ".join(fmt(row["metric"], row["values"][lb])
                                                                      for lb in labels) + f" | {delta} |")
    return "\n".join(lines) + "\n"


def compare(paths: list[str | Path], out: Path | None = None, labels: list[str] | None = None) -> Path:
    if len(paths) < 2:
        raise ValueError("eval.compare needs two or more result folders")
    results = [load_run(p) for p in paths]
    labels = labels or [Path(p).name or str(p) for p in paths]
    if len(labels) != len(paths) or len(set(labels)) != len(labels):
        labels = [f"{i}:{lb}" for i, lb in enumerate(labels)]
    runs = list(zip(labels, results))
    out = Path(out) if out else Path(paths[-1]) / "compare"
    out.mkdir(parents=True, exist_ok=True)
    rows = comparison_table(runs)
    plots = write_plots(runs, out / "plots")
    write_json(out / "comparison.json", {"runs": {lb: str(p) for lb, p in zip(labels, paths)}, "rows": rows,
                                         "plots": [f"plots/{p}" for p in plots]})
    (out / "comparison.md").write_text(markdown(runs, rows) + "\n" + "\n".join(f"![{p}](plots/{p})" for p in plots)
                                       + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="result folders of eval.run (two or more), oldest first")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--labels", default=None, help="comma-separated names of the runs (default: folder names)")
    args = parser.parse_args(argv)
    out = compare(args.runs, args.out, args.labels.split(",") if args.labels else None)
    print((out / "comparison.md").read_text())
    print(f"wrote {out}/comparison.json, comparison.md, plots/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
