"""Stages: every config in stages/ validates, bad configs fail before any work naming the key or path, --help
documents every field, and FRE then MGT run through the real CLI with MGT starting from FRE's final/."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lmmr1.config import ConfigError, StageConfig, field_docs, from_dict
from lmmr1.stages.common import DEFAULTS, load_config, main, resolve_init, validate

ROOT = Path(__file__).resolve().parents[1]
STAGE_FILES = sorted((ROOT / "stages").glob("*.yaml"))
PAPER_FILES = [p for p in STAGE_FILES if not p.name.startswith("default")]


def test_stage_files_exist():
    names = {p.name for p in STAGE_FILES}
    for required in ("default_fre.yaml", "default_mgt.yaml", "lmmr1_fre_text.yaml", "lmmr1_mgt_geo.yaml",
                     "lmmr1_mgt_percereason.yaml", "lmmr1_mgt_football.yaml", "lmmr1_sokoban.yaml",
                     "ngrpo_fre_text.yaml", "ngrpo_mgt_geo.yaml", "ucpo_fre_text.yaml", "ucpo_mgt_geo.yaml"):
        assert required in names


@pytest.mark.parametrize("path", STAGE_FILES, ids=lambda p: p.name)
def test_every_stage_yaml_parses_and_validates(path):
    cfg = load_config("fre", str(path), [])
    validate(cfg, check_paths=False)  # keys, types, registry names, ranges


@pytest.mark.parametrize("stage", ["fre", "mgt"])
def test_embedded_default_equals_its_yaml(stage):
    from_yaml = from_dict(StageConfig, yaml.safe_load((ROOT / "stages" / f"default_{stage}.yaml").read_text()))
    assert from_yaml == from_dict(StageConfig, DEFAULTS[stage])
    assert from_yaml.rollout.backend == "vllm"  # the default runs vLLM; tests override to hf


@pytest.mark.parametrize("path", PAPER_FILES, ids=lambda p: p.name)
def test_paper_configs_fail_clearly_without_user_paths(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no models/, data/ or runs/ here
    cfg = load_config("fre", str(path), [])
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    message = str(err.value)
    if cfg.stage.init_from:
        assert "stage.init_from" in message and cfg.stage.init_from in message
    else:
        assert "model.path" in message and "models/Qwen2.5-VL-3B-Instruct" in message
    # With the model there, the dataset path is the next thing named.
    cfg = load_config("fre", str(path), ["model.path=tiny", "stage.init_from="])
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert "data.train_files" in str(err.value) and cfg.data.train_files[0] in str(err.value)


def test_paper_settings_match_the_research_table():
    fre = load_config("fre", str(ROOT / "stages/lmmr1_fre_text.yaml"), [])
    assert (fre.algorithm.estimator, fre.optim.lr, fre.algorithm.kl_coef) == ("reinforce_baseline", 4e-7, 0.001)
    assert (fre.rollout.n_samples, fre.rollout.prompts_per_step, fre.rollout.max_new_tokens) == (16, 256, 4096)
    assert fre.optim.updates_per_step * fre.optim.micro_batch_size > 0 and fre.optim.micro_batch_size == 2
    perce = load_config("mgt", str(ROOT / "stages/lmmr1_mgt_percereason.yaml"), [])
    assert (perce.optim.lr, perce.rollout.max_new_tokens, perce.optim.micro_batch_size) == (4e-7, 8192, 1)
    sokoban = load_config("mgt", str(ROOT / "stages/lmmr1_sokoban.yaml"), [])
    assert (sokoban.algorithm.kl_coef, sokoban.rollout.prompts_per_step, sokoban.model.freeze_vision) == (0.0, 128, True)
    ngrpo = load_config("fre", str(ROOT / "stages/ngrpo_fre_text.yaml"), [])
    assert (ngrpo.algorithm.estimator, ngrpo.algorithm.eps_clip_low, ngrpo.algorithm.eps_clip_high,
            ngrpo.algorithm.group_filter) == ("ngrpo", 0.16, 0.24, "drop_all_correct")
    ucpo = load_config("mgt", str(ROOT / "stages/ucpo_mgt_geo.yaml"), [])
    assert (ucpo.algorithm.estimator, ucpo.algorithm.group_filter, ucpo.algorithm.reward) == (
        "ucpo", "non_ternary", "lmm_r1_uncertainty")


# ------------------------------------------------------------------------------------------ bad configs


def run_main(capsys, stage, argv):
    code = main(stage, argv)
    return code, capsys.readouterr()


def test_typo_in_a_key_names_the_key(capsys, tmp_path):
    code, out = run_main(capsys, "fre", ["--dry-run", "optim.lrr=1e-4"])
    assert code == 2 and "optim" in out.err and "'lrr'" in out.err and "lr" in out.err
    bad = tmp_path / "bad.yaml"
    bad.write_text("rollout:\n  n_sample: 4\n")
    code, out = run_main(capsys, "fre", ["--config", str(bad), "--dry-run"])
    assert code == 2 and "'n_sample'" in out.err and "rollout" in out.err


def test_unknown_names_are_errors(capsys):
    for override, key in (("algorithm.estimator=grpo2", "algorithm.estimator"), ("stage.engine=ray", "stage.engine"),
                          ("synthetic.train_tasks=[chess]", "synthetic.train_tasks"),
                          ("algorithm.estimator_args={r_maxx: 1}", "algorithm.estimator_args")):
        code, out = run_main(capsys, "fre", ["--dry-run", override])
        assert code == 2 and key in out.err, (override, out.err)


def test_missing_model_and_dataset_paths_are_named(capsys, tmp_path):
    code, out = run_main(capsys, "fre", ["--dry-run", f"model.path={tmp_path}/nope"])
    assert code == 2 and "model.path" in out.err and f"{tmp_path}/nope" in out.err
    missing = tmp_path / "data" / "missing.jsonl"
    code, out = run_main(capsys, "fre", ["--dry-run", "synthetic.train_tasks=[]", f"data.train_files=[{missing}]"])
    assert code == 2 and "data.train_files" in out.err and str(missing) in out.err
    code, out = run_main(capsys, "mgt", ["--dry-run", f"stage.init_from={tmp_path}/no_fre_run"])
    assert code == 2 and "stage.init_from" in out.err and "no_fre_run" in out.err
    assert not (tmp_path / "data").exists()  # nothing was started


def test_init_from_run_directory_or_explicit_checkpoint(tmp_path):
    from lmmr1.engine.local import resolve_model_path

    tiny = resolve_model_path("tiny")
    run = tmp_path / "fre_run"
    (run / "final").mkdir(parents=True)
    for f in tiny.iterdir():
        (run / "final" / f.name).symlink_to(f)
    cfg = load_config("mgt", None, [f"stage.init_from={run}"])
    resolved = resolve_init(cfg)
    assert resolved.model_path == str(run / "final") and "run-directory convention" in resolved.how
    cfg = load_config("mgt", None, [f"stage.init_from={run / 'final'}"])
    resolved = resolve_init(cfg)
    assert resolved.model_path == str(run / "final") and "explicit checkpoint" in resolved.how


def test_help_lists_every_field_with_its_doc():
    docs = field_docs(StageConfig)
    assert all(docs.values()), [k for k, v in docs.items() if not v]  # every field documented
    out = subprocess.run([sys.executable, "-m", "lmmr1.stages.fre", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    for key in docs:
        assert f" {key} " in text, key
    assert " ".join(docs["stage.init_from"].split())[:60] in text
    assert "Advantage estimator" in text and "G: responses per prompt." in text


# ------------------------------------------------------------------------------- warm-up and report


def test_warmup_target_earns_the_full_lmm_r1_reward():
    from lmmr1.data.records import UNANSWERABLE, validate_record
    from lmmr1.engine.warmup import target_response
    from lmmr1.rewards import RewardConfig, get_reward

    reward = get_reward("lmm_r1", RewardConfig())
    record = validate_record({"messages": [{"role": "user", "content": "2+3?"}], "images": [], "answer": "5"})
    result = reward(target_response("5"), record)
    assert result.total == pytest.approx(1.5) and result.outcome == "correct"  # 0.5 format + 1.0 accuracy
    assert reward(target_response("6"), record).total == pytest.approx(0.5)
    unc = get_reward("lmm_r1_uncertainty", RewardConfig())
    record = validate_record({"messages": [{"role": "user", "content": "x?"}], "images": [], "answer": UNANSWERABLE})
    assert unc(target_response(UNANSWERABLE), record).outcome == "correct"


def test_report_from_metrics(tmp_path):
    from lmmr1.stages.report import write_report

    rows = [{"step": 0, "eval/accuracy": 0.1, "eval/reward_mean": 0.4},
            {"step": 1, "reward/mean": 0.5, "reward/accuracy": 0.2},
            {"step": 2, "reward/mean": 0.7, "reward/accuracy": 0.3, "eval/accuracy": 0.25, "eval/reward_mean": 0.6}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = write_report(tmp_path, {"stage": "fre", "init": "model.path=tiny", "final_checkpoint": "/x/final"})
    text = report.read_text()
    assert "before RL (step 0): 0.100" in text and "after RL (step 2): 0.250" in text and "/x/final" in text
    assert "0.500 -> 0.700" in text
    for png in ("reward.png", "accuracy.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"


# --------------------------------------------------------------------------------- FRE then MGT, real CLI

CI_SIZE = ["rollout.backend=hf", "rollout.n_samples=2", "rollout.prompts_per_step=2", "rollout.max_new_tokens=8",
           "train.steps=2", "train.eval_every=0", "train.progress=false", "data.max_eval_records=4",
           "synthetic.n_train=8", "synthetic.n_eval=2", "optim.micro_batch_size=4", "optim.updates_per_step=1"]


def test_fre_then_mgt_through_the_cli(tmp_path):
    fre_dir, mgt_dir = tmp_path / "fre", tmp_path / "mgt"
    cli = lambda stage, extra: subprocess.run(  # noqa: E731
        [sys.executable, "-m", f"lmmr1.stages.{stage}", *CI_SIZE, *extra], cwd=ROOT, capture_output=True, text=True,
        timeout=300)
    fre = cli("fre", [f"train.run_dir={fre_dir}", "warmup.steps=2", "warmup.batch_size=4"])
    assert fre.returncode == 0, fre.stderr[-3000:]
    mgt = cli("mgt", [f"train.run_dir={mgt_dir}", f"stage.init_from={fre_dir}", "synthetic.image_size=28",
                      "warmup.steps=2", "warmup.batch_size=4",
                      "eval.suites=[synthetic-mm]", "eval.overrides=[backend=hf, limit=2, max_new_tokens=8]"])
    assert mgt.returncode == 0, mgt.stderr[-3000:]

    # MGT started from FRE's final/ by the run-directory convention, and said so.
    assert f"run-directory convention: stage.init_from={fre_dir} -> {fre_dir / 'final'}" in mgt.stdout
    assert json.loads((mgt_dir / "stage_summary.json").read_text())["init_path"] == str(fre_dir / "final")
    # Each stage warmed up first (MGT's warm-up from FRE's final/) and trained from its warm-up checkpoint.
    assert json.loads((fre_dir / "config.json").read_text())["model"]["path"] == str(fre_dir / "warmup")
    assert json.loads((mgt_dir / "config.json").read_text())["model"]["path"] == str(mgt_dir / "warmup")
    for run_dir in (fre_dir, mgt_dir):
        for name in ("report.md", "reward.png", "accuracy.png", "final/config.json", "config.json", "versions.json",
                     "stage_config.json", "data/train.jsonl", "data/eval.jsonl"):
            assert (run_dir / name).is_file(), (run_dir, name)
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows] == [0, 1, 2] and "eval/accuracy" in rows[-1]
        assert "Held-out accuracy before RL" in (run_dir / "report.md").read_text()
    # MGT ran its eval suite through the eval harness on final/.
    suite_dir = mgt_dir / "eval" / "synthetic-mm"
    assert (suite_dir / "results.json").is_file() and (suite_dir / "report.md").is_file(), sorted(suite_dir.iterdir())
    assert "Eval suite `synthetic-mm`" in (mgt_dir / "report.md").read_text()
    assert "synthetic-mm" in json.loads((mgt_dir / "stage_summary.json").read_text())["eval_suites"]
    mgt_records = [json.loads(line) for line in (mgt_dir / "data/train.jsonl").read_text().splitlines()]
    assert all(r["images"] for r in mgt_records)  # MGT data is multimodal
    fre_records = [json.loads(line) for line in (fre_dir / "data/train.jsonl").read_text().splitlines()]
    assert not any(r["images"] for r in fre_records)  # FRE data is text-only


def test_run_all_validates_the_whole_list_first(capsys, tmp_path, monkeypatch):
    from lmmr1.stages import run_all

    monkeypatch.chdir(tmp_path)
    # The default MGT starts from runs/default_fre, which the default FRE (first in the list) will write.
    assert run_all.main(["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "fre: runs/default_fre" in out and "mgt: runs/default_mgt (from runs/default_fre)" in out
    # A typo in the second stage fails before the first one starts.
    second = tmp_path / "mgt.yaml"
    second.write_text("stage: {name: mgt, init_from: runs/default_fre}\nsynthetic: {train_tasks: [counting]}\n"
                      "optim: {lr: 1e-4, typo: 1}\n")
    assert run_all.main([str(ROOT / "stages/default_fre.yaml"), str(second)]) == 2
    assert "optim" in capsys.readouterr().err and not (tmp_path / "runs").exists()


def test_openrlhf_engine_refuses_the_warmup_before_any_work(tmp_path):
    from lmmr1.stages.common import run_stage

    cfg = load_config("fre", None, ["stage.engine=openrlhf", f"train.run_dir={tmp_path}/run"])
    with pytest.raises(ConfigError, match="warmup.steps > 0: the format warm-up runs only in the local engine"):
        run_stage(cfg)
    assert not (tmp_path / "run").exists()
