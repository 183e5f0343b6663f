#!/usr/bin/env bash
# The single-device engine's numbers on one NVIDIA GPU, for docs/benchmarks.md: Qwen2.5-VL-3B's architecture
# (random weights, bfloat16) and the tiny model, with HF rollouts. Each run's table goes to OUT_DIR/<name>.md,
# its raw numbers to OUT_DIR/<name>.json, the log to OUT_DIR/<name>.log, the machine to OUT_DIR/machine.txt.
# Then the engine's HF-backend tests run on the GPU (device placement, bf16, resume after SIGKILL, learning):
# OUT_DIR/engine_tests.log.
#
#   PY=python ./scripts/bench_gpu.sh OUT_DIR
#
# It needs only lmmr1's core (torch, torchvision, transformers and the small packages in pyproject.toml's
# `dependencies`), not vLLM, Ray, DeepSpeed or OpenRLHF. On a GPU machine that already has torch, torchvision
# and transformers but no network, bring the missing pure-Python packages as wheels:
#
#   ./scripts/bench_gpu.sh --fetch-wheels WHEEL_DIR          # where there is a package index (~0.4 MB)
#   WHEELS=WHEEL_DIR PY=python3 ./scripts/bench_gpu.sh OUT_DIR # on the GPU machine: installs them, then runs
#
# Runs stop at their own time limit (BENCH_TIMEOUT seconds each, default 240) so that one slow run still
# leaves the others' results. ARCH_3B_ARGS adds arguments to the 3B run only: a plumbing check on a CPU is
#   ARCH_3B_ARGS="--model-override num_hidden_layers=1 --model-override vision_depth=1
#                 --model-override vision_fullatt_block_indexes=0 --steps 2 --new-tokens 8" ./scripts/bench_gpu.sh OUT
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
# The versions uv.lock pins; all four are pure-Python wheels.
PURE_PYTHON_DEPS=(qwen-vl-utils==0.0.14 math-verify==0.9.0 latex2sympy2_extended==1.11.0 antlr4-python3-runtime==4.13.2)

if [[ ${1:-} == --fetch-wheels ]]; then
  dir=${2:?usage: $0 --fetch-wheels WHEEL_DIR}
  exec ${PIP:-python3 -m pip} download --no-deps --only-binary=:all: -d "$dir" "${PURE_PYTHON_DEPS[@]}"
fi
out=${1:?usage: $0 OUT_DIR   (or: $0 --fetch-wheels WHEEL_DIR)}
mkdir -p "$out"

if [[ -n ${WHEELS:-} ]]; then
  site=$(mktemp -d)
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$WHEELS"/*.whl || exit 1
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
  "$PY" -c 'import sys, torch, transformers; print("python", sys.version.split()[0], "torch", torch.__version__,
"cuda", torch.version.cuda, "transformers", transformers.__version__, "gpu", torch.cuda.is_available())'
} >"$out/machine.txt" 2>&1
cat "$out/machine.txt"

status=0
bench() {  # NAME ARGS...: one engine_throughput run
  local name=$1; shift
  echo "== $name: bench/engine_throughput.py $*"
  timeout "${BENCH_TIMEOUT:-240}" "$PY" bench/engine_throughput.py "$@" --json "$out/$name.json" \
    >"$out/$name.log" 2>&1
  local rc=$?
  sed -n '/^steps=/,$p' "$out/$name.log" | tee "$out/$name.md"
  if [[ $rc != 0 ]]; then echo "$name failed (exit $rc), last lines of $out/$name.log:"; tail -n 15 "$out/$name.log"; status=1; fi
}

# Qwen2.5-VL-3B's sizes: P x G = 16 samples of 128 new tokens per step (random weights never stop early).
bench qwen25vl3b_bf16 --arch qwen2.5-vl-3b --backends hf --steps 4 --prompts 2 --samples 8 --new-tokens 128 \
  --micro-batch 4 ${ARCH_3B_ARGS:-}
# The tiny model on the GPU, the same settings as the CPU table in docs/benchmarks.md.
bench tiny_fp32 --backends hf --steps 6

# The single-device engine's tests that need no vLLM, now on the GPU (the engine picks CUDA when it is there).
echo "== engine tests (HF backend) on the GPU"
timeout "${BENCH_TIMEOUT:-240}" "$PY" -m pytest -q -p no:cacheprovider tests/test_engine.py tests/test_rollout.py \
  tests/test_learning.py -k "not vllm and not weight_push and not seeded_rollout and not pixel_overrides" \
  >"$out/engine_tests.log" 2>&1 || status=1
tail -n 3 "$out/engine_tests.log"
exit $status
