"""Evaluation harness: benchmarks, football episodes, metrics, reports.

    python -m eval.run --model DIR|tiny|RUN_DIR --suite NAME_OR_YAML [--out DIR] [key=value ...]
    python -m eval.compare RUN1 RUN2 [...] [--out DIR] [--labels a,b]

Modules: eval.suites (EvalConfig, suites, prompt templates), eval.benchmarks (loaders of the public layouts,
multiple-choice grading, row exclusion, published subsets), eval.judge (LLM-judge answer extraction),
eval.metrics (accuracy, pass@k and its log2 AUC, per-subset scores, PAQ / F1 / abstention rate, football
episode reward), eval.football (episodes played by the model), eval.report
(results.json, report.md, plots), eval.run and eval.compare (the commands). Details: docs/eval.md.
"""
