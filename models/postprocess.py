"""The network's outputs as served, in numpy: calibrated probabilities and class maps scaled to [0, 1].

The serving process runs ONNX Runtime and never loads torch, so these are the numpy twins of
``models.inference.calibrated_probs`` and ``models.gradcam.scale_maps`` (training and evaluation
use those on tensors); tests/test_postprocess.py holds the two to the same numbers.
"""

from __future__ import annotations

import numpy as np


def calibrated_probs(logits: np.ndarray, temperature: float, bias: float = 0.0) -> np.ndarray:
    """(N, 2) logits -> (N, 2) float64 probabilities: softmax(logits / T) with ``bias`` added to the
    PNEUMONIA logit, i.e. P(PNEUMONIA) = sigmoid((z_P - z_N) / T + bias)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z + np.array([0.0, bias])
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def scale_maps(maps: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """ReLU, then per-map min-max to [0, 1]. (N, h, w) float32 in and out."""
    m = np.maximum(np.asarray(maps, dtype=np.float32), np.float32(0))
    m = m - m.min(axis=(1, 2), keepdims=True)
    return m / (m.max(axis=(1, 2), keepdims=True) + np.float32(eps))
