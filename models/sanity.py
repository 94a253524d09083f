"""The textbook sanity check: a new architecture must be able to memorise one batch."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from models.registry import build_model


def overfit_one_batch(arch: str, *, image_size: int = 64, batch: int = 8, steps: int = 60, lr: float = 3e-3,
                      seed: int = 0) -> dict[str, Any]:
    """Train on one fixed random batch; the loss must fall below 5% of its start (and under 0.05)."""
    torch.manual_seed(seed)
    model = build_model(arch, pretrained=False)
    x = torch.randn(batch, 1, image_size, image_size)
    y = torch.arange(batch) % 2
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for m in model.modules():  # dropout off: memorising is the point
        if isinstance(m, (nn.Dropout, nn.Dropout2d)):
            m.p = 0.0
    first = last = 0.0
    for step in range(steps):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 0:
            first = loss.item()
        last = loss.item()
    return {"arch": arch, "steps": steps, "first_loss": round(first, 4), "final_loss": round(last, 5),
            "passed": last < 0.05}
