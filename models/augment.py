"""Training augmentation of normalized radiograph batches, with named presets (the card's ``augment``)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from models.errors import CXRError


AUGMENT_PRESETS: dict[str, dict[str, float | tuple[float, float]]] = {
    # positioning and exposure vary a little between radiographs
    "standard": {"max_rotate_deg": 10.0, "max_shift": 0.06, "scale_range": (0.9, 1.1), "brightness": 0.1,
                 "contrast": 0.15, "gamma": 0.0},
    # more scanner/exposure variety: for data from other sites or another time
    "strong": {"max_rotate_deg": 15.0, "max_shift": 0.08, "scale_range": (0.85, 1.15), "brightness": 0.2,
               "contrast": 0.3, "gamma": 0.3},
    # against shortcut learning: the borders (shoulders, collimation, markers) are blanked at random,
    # so the evidence has to come from the lung fields
    "robust": {"max_rotate_deg": 10.0, "max_shift": 0.06, "scale_range": (0.9, 1.1), "brightness": 0.15,
               "contrast": 0.25, "gamma": 0.2, "border_erase": 0.15},
    "none": {"max_rotate_deg": 0.0, "max_shift": 0.0, "scale_range": (1.0, 1.0), "brightness": 0.0,
             "contrast": 0.0, "gamma": 0.0},
}



def check_preset(preset: str, what: str = "augmentation") -> dict[str, float | tuple[float, float]]:
    """The keyword arguments of ``augment_batch`` for a named preset, or a clear CXRError."""
    if preset not in AUGMENT_PRESETS:
        raise CXRError(f"unknown {what} preset {preset!r}; choose from {', '.join(AUGMENT_PRESETS)}")
    return AUGMENT_PRESETS[preset]

def augment_batch(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    max_rotate_deg: float = 10.0,
    max_shift: float = 0.06,
    scale_range: tuple[float, float] = (0.9, 1.1),
    brightness: float = 0.1,
    contrast: float = 0.15,
    gamma: float = 0.0,
    border_erase: float = 0.0,
    mean: float = 0.5,
    std: float = 0.25,
) -> torch.Tensor:
    """Radiograph-appropriate random augmentation of a normalized (N, 1, S, S) batch.

    Small rotations, shifts and zooms (positioning varies between exposures) and
    brightness/contrast jitter (exposure and detector vary). No horizontal flip: the heart
    sits on the patient's left, and a mirrored chest is not an image the model will meet.
    ``border_erase`` > 0: half the images get each side blanked (to the darkest value) over a
    random width of up to that fraction of the side. All randomness comes from ``generator`` so
    a seeded run repeats exactly.
    """
    n = x.shape[0]
    dev = x.device

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(n, generator=generator).to(dev) * (hi - lo) + lo

    angle = uniform(-max_rotate_deg, max_rotate_deg) * (math.pi / 180.0)
    scale = uniform(*scale_range)
    tx, ty = uniform(-max_shift, max_shift) * 2, uniform(-max_shift, max_shift) * 2
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # Fill the exposed border with the image's darkest value (air/collimation), not mid-grey.
    fill = x.amin(dim=(1, 2, 3), keepdim=True)
    out = F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill
    if border_erase > 0:
        size = x.shape[-1]
        widths = (torch.rand(n, 4, generator=generator) * border_erase * size).long().to(dev)  # top, bottom, left, right
        widths = widths * (torch.rand(n, 1, generator=generator) < 0.5).to(dev)
        idx = torch.arange(size, device=dev)
        rows = (idx[None, :] < widths[:, :1]) | (idx[None, :] >= size - widths[:, 1:2])
        cols = (idx[None, :] < widths[:, 2:3]) | (idx[None, :] >= size - widths[:, 3:4])
        blank = (rows[:, :, None] | cols[:, None, :]).unsqueeze(1)
        out = torch.where(blank, fill.expand_as(out), out)
    if gamma > 0:  # detector response: intensity ** g on the [0, 1] scale, log-uniform g
        g = torch.exp(uniform(-gamma, gamma)).view(n, 1, 1, 1)
        out = (((out * std + mean).clamp(0, 1)) ** g - mean) / std
    c = uniform(1 - contrast, 1 + contrast).view(n, 1, 1, 1)
    b = uniform(-brightness, brightness).view(n, 1, 1, 1) * 4.0  # in normalized units (std 0.25)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    return (out - mean) * c + mean + b
