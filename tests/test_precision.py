"""bf16 training with fp32 master weights (lmmr1.engine.precision): the optimizer's arithmetic is fp32
AdamW on the bf16 gradients, exactly; without it, small updates round away."""

from __future__ import annotations

import torch

from lmmr1.engine.precision import MasterWeights, master_weights_for


def _bf16_layer(seed: int = 0) -> torch.nn.Linear:
    torch.manual_seed(seed)
    layer = torch.nn.Linear(64, 64)
    torch.nn.init.normal_(layer.weight, std=0.02)
    return layer.to(torch.bfloat16)


def _loss(layer: torch.nn.Linear, step: int) -> torch.Tensor:
    x = torch.randn(8, 64, generator=torch.Generator().manual_seed(step)).to(torch.bfloat16)
    return layer(x).float().pow(2).mean()


def test_master_weights_are_fp32_adamw_on_the_bf16_gradients():
    layer = _bf16_layer()
    master = master_weights_for(layer)
    assert isinstance(master, MasterWeights) and all(m.dtype == torch.float32 for m in master.params)
    optimizer = torch.optim.AdamW(master.params, lr=1e-6)
    reference = [p.detach().float().clone().requires_grad_(True) for p in layer.parameters()]
    reference_optimizer = torch.optim.AdamW(reference, lr=1e-6)
    for step in range(5):
        _loss(layer, step).backward()
        grads = [p.grad.float() for p in layer.parameters()]
        master.grads_to_master()
        assert all(p.grad is None for p in layer.parameters())
        optimizer.step()
        master.to_model()
        for r, g in zip(reference, grads):
            r.grad = g
        reference_optimizer.step()
    for m, r, p in zip(master.params, reference, layer.parameters()):
        assert torch.equal(m, r)  # fp32 AdamW, bit for bit
        assert torch.equal(p, r.to(torch.bfloat16))  # the model holds the rounded master weights
    # Five updates of ~1e-6 on weights ~0.02 (bf16 spacing ~1e-4): the master moved, the bf16 copy barely.
    w0 = _bf16_layer().weight.float()
    assert (master.params[0] != w0).float().mean() > 0.99


def test_without_master_weights_a_bf16_adamw_loses_the_updates():
    layer = _bf16_layer()
    optimizer = torch.optim.AdamW(layer.parameters(), lr=1e-6)
    for step in range(5):
        optimizer.zero_grad()
        _loss(layer, step).backward()
        optimizer.step()
    changed = (layer.weight != _bf16_layer().weight).float().mean()
    assert changed < 0.05, changed  # nearly every update rounded away


def test_float32_models_need_none_and_state_round_trips():
    assert master_weights_for(torch.nn.Linear(4, 4)) is None
    layer = _bf16_layer()
    master = master_weights_for(layer)
    with torch.no_grad():
        for m in master.params:
            m.add_(1e-6)  # below bf16 resolution: only the master copy holds it
    saved = master.state_dict()
    restored = MasterWeights([p for p in _bf16_layer().parameters()])
    restored.load_state_dict(saved)
    assert all(torch.equal(a, b) for a, b in zip(restored.params, master.params))
