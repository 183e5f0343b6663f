#!/usr/bin/env bash
# Smoke test of the distributed engine (stage.engine=openrlhf) for a machine with NVIDIA GPUs: the tiny
# Qwen2.5-VL through FRE (synthetic text) then MGT (synthetic images, from FRE's final/), two RL steps each,
# on OpenRLHF's PPO-Ray stack with lmmr1's estimators, reward_func and rollout engines.
#
#   (once) install as README "Install on a GPU cluster" says: the gpu + openrlhf extras (CUDA vLLM, flash-attn)
#   GPUS=1 PY=python ./scripts/smoke_distributed.sh
#
# It passes when both stages finish and MGT's final/ checkpoint (model + processor) exists. The tiny model is
# random, so rewards are ~0: this checks the wiring (Ray, vLLM engines, DeepSpeed, weight broadcast, cache
# resets, checkpoint hand-over), not learning.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
GPUS=${GPUS:-1}
RUN=${RUN:-runs/smoke_distributed}
common=(
  stage.engine=openrlhf model.dtype=bfloat16 warmup.steps=0
  train.steps=2 train.save_every=2 train.eval_every=0 train.tensorboard=false
  rollout.n_samples=4 rollout.prompts_per_step=4 rollout.max_new_tokens=32 rollout.gpu_memory_utilization=0.3
  optim.updates_per_step=1 optim.micro_batch_size=4
  openrlhf.gpus_per_node="$GPUS" openrlhf.vllm_num_engines="$GPUS" openrlhf.zero_stage=2
  openrlhf.gradient_checkpointing=false openrlhf.attn_implementation=sdpa
)
"$PY" -m lmmr1.stages.fre "${common[@]}" train.run_dir="$RUN/fre"
"$PY" -m lmmr1.stages.mgt "${common[@]}" stage.init_from="$RUN/fre" train.run_dir="$RUN/mgt"
test -f "$RUN/mgt/final/config.json" -a -f "$RUN/mgt/final/processor_config.json"
echo "distributed smoke: OK ($RUN/fre/final -> $RUN/mgt/final)"
