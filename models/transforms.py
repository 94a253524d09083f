"""The ONE preprocessing definition: 8-bit grayscale -> resize -> normalize.

Training caches the output of ``resize`` (uint8) once and applies ``normalize`` per batch;
evaluation calls ``PreprocessSpec.to_tensor`` and serving ``to_array`` (the same numbers in numpy,
so the ONNX-serving process needs no torch), both exactly ``normalize(resize(pixels))``.
Training augmentations (models/augment.py) act on top of the same normalized tensors. The spec
is stored in every model card, so a served model reproduces its training input bit for bit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import torch


class PreprocessSpec(BaseModel):
    """How a grayscale radiograph becomes a model input. Recorded verbatim in each card."""

    model_config = ConfigDict(frozen=True)

    image_size: int = Field(224, ge=32, le=1024, description="square model input side in pixels")
    channels: Literal[1] = 1
    # The shared training images were stretched to 224x224 without keeping the aspect
    # ratio, so serving stretches too: the model sees the same geometry it was trained on.
    resize: Literal["stretch_bilinear"] = "stretch_bilinear"
    mean: float = 0.5
    std: float = 0.25
    decode: str = "8-bit grayscale; DICOM: modality LUT, VOI window (else min-max), MONOCHROME1 inverted"

    def resize_uint8(self, pixels: np.ndarray) -> np.ndarray:
        """(H, W) uint8 -> (S, S) uint8 with Pillow's antialiased bilinear filter."""
        if pixels.dtype != np.uint8 or pixels.ndim != 2:
            raise ValueError(f"expected a 2-D uint8 array, got {pixels.dtype} {pixels.shape}")
        s = self.image_size
        if pixels.shape == (s, s):
            return pixels
        img = Image.fromarray(pixels, mode="L").resize((s, s), Image.Resampling.BILINEAR)
        return np.asarray(img, dtype=np.uint8)

    def normalize(self, batch_uint8: torch.Tensor) -> torch.Tensor:
        """(..., S, S) uint8 -> float32 with the card's mean/std (training batches)."""
        import torch

        return (batch_uint8.to(torch.float32) / 255.0 - self.mean) / self.std

    def to_array(self, pixels: np.ndarray) -> np.ndarray:
        """(H, W) uint8 -> (1, S, S) float32: the serving transform, ``normalize`` in float32 numpy
        (equal to it; tests/test_preprocess.py checks)."""
        x = self.resize_uint8(pixels).astype(np.float32)
        x /= np.float32(255.0)
        x -= np.float32(self.mean)
        x /= np.float32(self.std)
        return x[None]

    def to_tensor(self, pixels: np.ndarray) -> torch.Tensor:
        """(H, W) uint8 -> (1, S, S) float32: the evaluation transform (``to_array`` as a tensor)."""
        import torch

        return torch.from_numpy(self.to_array(pixels))
