"""Batched logits for cached uint8 images: the evaluation path shared by training and `cxr evaluate`."""

from __future__ import annotations

import torch
from torch import nn

from models.transforms import PreprocessSpec


@torch.inference_mode()
def predict_logits(
    model: nn.Module, images: torch.Tensor, spec: PreprocessSpec, device: torch.device, *, batch_size: int = 64
) -> torch.Tensor:
    """(N, S, S) uint8 -> (N, 2) float32 logits on the CPU, model in eval mode."""
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = spec.normalize(images[i : i + batch_size]).unsqueeze(1).to(device)
        out.append(model(x).float().cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty((0, 2))


def calibrated_probs(logits: torch.Tensor, temperature: float, bias: float = 0.0) -> torch.Tensor:
    """(N, 2) logits -> (N, 2) calibrated class probabilities: softmax(logits / T) with ``bias`` added to
    the PNEUMONIA logit, i.e. P(PNEUMONIA) = sigmoid((z_P - z_N) / T + bias). ``bias`` 0 is temperature
    scaling (Guo et al. 2017); with it, Platt scaling of the logit difference, which also corrects a
    shifted prevalence or a site whose images all look a little more (or less) abnormal."""
    z = logits / temperature
    if bias:
        z = z + torch.tensor([0.0, bias], dtype=z.dtype, device=z.device)
    return torch.softmax(z, dim=1)


def calibrated_p_pneumonia(logits: torch.Tensor, temperature: float, bias: float = 0.0) -> torch.Tensor:
    return calibrated_probs(logits, temperature, bias)[:, 1]
