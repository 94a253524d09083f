"""The numpy post-processing the server uses equals the torch definitions training and evaluation use."""

import numpy as np
import torch

from models import postprocess
from models.gradcam import scale_maps
from models.inference import calibrated_probs


def test_calibrated_probabilities_match_the_torch_definition():
    logits = torch.randn(64, 2, generator=torch.Generator().manual_seed(0)) * 6
    for t, bias in ((1.0, 0.0), (0.601, -2.787), (2.5, 1.3)):
        expected = calibrated_probs(logits.double(), t, bias).numpy()
        got = postprocess.calibrated_probs(logits.numpy(), t, bias)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
        np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-12)


def test_extreme_logits_stay_finite():
    p = postprocess.calibrated_probs(np.array([[-800.0, 800.0], [800.0, -800.0]]), 0.5, 3.0)
    assert np.isfinite(p).all() and p[0, 1] == 1.0 and p[1, 1] == 0.0


def test_scaled_maps_match_the_torch_definition():
    maps = torch.randn(5, 7, 7, generator=torch.Generator().manual_seed(1))
    maps[3] = -1.0  # an all-negative map scales to zeros, not NaN
    got = postprocess.scale_maps(maps.numpy())
    np.testing.assert_allclose(got, scale_maps(maps).numpy(), rtol=0, atol=1e-6)
    assert got.dtype == np.float32 and got.min() >= 0 and got.max() <= 1
    assert (got[3] == 0).all()
