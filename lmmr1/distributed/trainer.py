"""lmmr1's PPO trainer actor for OpenRLHF 0.11.2: OpenRLHF's `PPOTrainer` whose experience maker is
`LmmExperienceMaker` (lmmr1's estimators and group filters) and whose weight broadcast ends with
`reset_caches()` on every rollout engine (lmmr1.distributed.rollout). Imported inside the Ray trainer actor.
"""

from __future__ import annotations

import ray
from openrlhf.trainer.ppo_trainer import PPOTrainer
from openrlhf.trainer.ray.vllm_engine import batch_vllm_engine_call

from lmmr1.distributed.experience_maker import LmmExperienceMaker


class LmmPPOTrainerImpl(PPOTrainer.__ray_actor_class__):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.experience_maker = LmmExperienceMaker(
            self.actor_model_group, self.critic_model_group, self.reward_model_group, self.reference_model_group,
            self.kl_ctl, self.strategy, self.tokenizer)

    def broadcast_to_vllm(self) -> None:
        super().broadcast_to_vllm()
        batch_vllm_engine_call(self.vllm_engines, "reset_caches")


LmmPPOTrainer = ray.remote(LmmPPOTrainerImpl)
