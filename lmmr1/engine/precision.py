"""bf16 training with fp32 master weights: the optimizer's parameters for a bf16 policy.

A bf16 weight w keeps 8 significant bits: an update smaller than half its spacing, |w| * 2^-9, rounds
away. At LMM-R1's learning rates (1e-6 on weights ~0.02: Adam's first step moves w by ~lr, a 5e-5 relative
change against bf16's 2e-3 half-spacing) nearly every update of a bf16 AdamW is lost. DeepSpeed's bf16
optimizer, which OpenRLHF's --bf16 runs, keeps an fp32 copy that the optimizer updates and rounds it into
the model after every step; this is that, for one device:

    g32 = float32(g16);   w32 <- AdamW(w32, g32) (grad clipping on g32);   w16 = bfloat16(w32)

The forward, backward and rollouts stay in bf16 (the model's dtype); the optimizer states and the master
copy are fp32 (16 bytes per trainable parameter beside the model's 2, as DeepSpeed's).
"""

from __future__ import annotations

import torch


class MasterWeights:
    """fp32 copies of a model's trainable parameters (any dtype below float32).

    Per optimizer step: `grads_to_master()` after the backward passes, clip and step an optimizer built
    over `self.params`, then `to_model()`."""

    def __init__(self, model_params: list[torch.nn.Parameter]):
        self.model_params = model_params
        self.params = [p.detach().float().clone().requires_grad_(True) for p in model_params]

    def grads_to_master(self) -> None:
        """g32 = float32(g16) for every parameter; the model's own gradients are freed."""
        for p, m in zip(self.model_params, self.params):
            m.grad = None if p.grad is None else p.grad.float()
            p.grad = None

    @torch.no_grad()
    def to_model(self) -> None:
        """w16 = bfloat16(w32): the model gets the updated master weights, rounded."""
        for p, m in zip(self.model_params, self.params):
            p.copy_(m)

    @torch.no_grad()
    def from_model(self) -> None:
        """w32 = float32(w16): start again from the model's weights (a resume without saved master weights)."""
        for p, m in zip(self.model_params, self.params):
            m.copy_(p)

    def zero_grad(self) -> None:
        for p in (*self.model_params, *self.params):
            p.grad = None

    def state_dict(self) -> list[torch.Tensor]:
        return [m.detach().clone() for m in self.params]

    @torch.no_grad()
    def load_state_dict(self, tensors: list[torch.Tensor]) -> None:
        if len(tensors) != len(self.params) or any(t.shape != m.shape for t, m in zip(tensors, self.params)):
            raise ValueError("checkpoint: the saved fp32 master weights do not fit this model's trainable parameters")
        for m, t in zip(self.params, tensors):
            m.copy_(t)
        self.to_model()


def master_weights_for(model: torch.nn.Module) -> MasterWeights | None:
    """MasterWeights over the trainable parameters when they are below float32 (bf16), else None (the
    optimizer updates the model's own fp32 parameters)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if all(p.dtype == torch.float32 for p in params):
        return None
    return MasterWeights(params)
