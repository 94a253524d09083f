"""Calibration and operating point, fitted on validation: the temperature and the screening threshold.

The temperature minimises the NLL of the clean validation images (Guo et al. 2017). The threshold
is the highest one that keeps sensitivity >= ``min_sensitivity`` on the validation images *as seen
under the training augmentation* (``threshold_augment``, ``threshold_draws`` seeded draws of each
image): a triage threshold has to keep its sensitivity when positioning and exposure vary, and on
clean validation images carved from the training distribution the 95 % point rests on a handful
of atypical positives. ``threshold_augment="none"`` gives the plain rule (clean images only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from models.inference import calibrated_p_pneumonia, predict_logits
from models.metrics import fit_temperature, screening_threshold
from models.augment import augment_batch, check_preset
from models.transforms import PreprocessSpec


@dataclass(frozen=True)
class OperatingPoint:
    temperature: float
    threshold: float
    rule: str
    # the calibrated P(PNEUMONIA) and labels of the augmented validation set the threshold was chosen
    # on (None with the plain rule): the card reports its metrics, so the rule can be checked
    augmented_p: np.ndarray | None = None
    augmented_labels: np.ndarray | None = None


def describe_rule(min_sensitivity: float, augment: str, draws: int) -> str:
    where = ("clean validation images" if augment == "none"
             else f"validation images under the '{augment}' augmentation ({draws} seeded draws each)")
    return (f"temperature: NLL on clean validation images; threshold: highest with sensitivity >= "
            f"{min_sensitivity:g} on {where}")


@torch.inference_mode()
def augmented_logits(model: nn.Module, images: torch.Tensor, spec: PreprocessSpec, device: torch.device, *,
                     augment: str, draws: int, seed: int = 0, batch_size: int = 64) -> torch.Tensor:
    """(N, S, S) uint8 -> (draws * N, 2) logits of the images under ``augment``; draw d is rows d*N..(d+1)*N."""
    kwargs = check_preset(augment)
    gen = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    out = []
    for _ in range(draws):
        for i in range(0, len(images), batch_size):
            x = augment_batch(spec.normalize(images[i : i + batch_size]).unsqueeze(1), gen, mean=spec.mean,
                              std=spec.std, **kwargs)
            out.append(model(x.to(device)).float().cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty((0, 2))


def fit_operating_point(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, spec: PreprocessSpec,
                        device: torch.device, *, min_sensitivity: float, augment: str = "standard", draws: int = 2,
                        seed: int = 0, clean_logits: torch.Tensor | None = None) -> OperatingPoint:
    """Temperature on the clean validation logits, threshold per the rule in the module docstring."""
    if clean_logits is None:
        clean_logits = predict_logits(model, images, spec, device)
    temperature = fit_temperature(clean_logits, labels)
    if augment == "none" or draws < 1:
        p = calibrated_p_pneumonia(clean_logits, temperature).numpy()
        threshold = screening_threshold(labels.numpy(), p, min_sensitivity=min_sensitivity)
        return OperatingPoint(temperature, threshold, describe_rule(min_sensitivity, "none", 0))
    logits = augmented_logits(model, images, spec, device, augment=augment, draws=draws, seed=seed)
    y = labels.repeat(draws).numpy()
    p = calibrated_p_pneumonia(logits, temperature).numpy()
    threshold = screening_threshold(y, p, min_sensitivity=min_sensitivity)
    return OperatingPoint(temperature, threshold, describe_rule(min_sensitivity, augment, draws),
                          augmented_p=p, augmented_labels=y)
