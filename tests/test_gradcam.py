"""Grad-CAM: the forward-only CAM and the backward path both match the grad-cam package."""

import numpy as np
import pytest
import torch

from models.gradcam import forward_with_cam, gradcam_backward, scale_maps
from models.registry import build_model


def _reference(model, x, targets):
    gradcam = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with gradcam.GradCAM(model=model, target_layers=[model.features]) as cam:
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in targets])


def _upsample_like_reference(maps, size):
    import cv2

    out = np.stack([cv2.resize(m, size) for m in maps.numpy()])
    return np.stack([(m - m.min()) / (m.max() + 1e-7) for m in out])


@pytest.mark.parametrize("arch", ["simple_cnn", "resnet18", "efficientnet_lite0"])
def test_both_paths_match_pytorch_grad_cam(arch):
    torch.manual_seed(0)
    model = build_model(arch).eval()
    x = torch.randn(3, 1, 96, 96)
    targets = torch.tensor([1, 0, 1])
    with torch.no_grad():
        logits, cams = forward_with_cam(model, x)
    fast = scale_maps(cams[torch.arange(3), targets])
    logits_b, raw = gradcam_backward(model, x, model.features, targets)
    slow = scale_maps(raw)
    assert torch.allclose(logits, logits_b, atol=1e-5)
    assert (fast - slow).abs().max() < 1e-4
    ref = _reference(model, x, targets)
    assert np.abs(_upsample_like_reference(fast, (96, 96)) - ref).max() < 1e-4
    assert np.abs(_upsample_like_reference(slow, (96, 96)) - ref).max() < 1e-4


def test_no_hooks_left_behind_and_no_grads_kept():
    model = build_model("simple_cnn").eval()
    gradcam_backward(model, torch.randn(2, 1, 64, 64), model.features, torch.tensor([0, 1]))
    assert not model.features._forward_hooks and not model.features._backward_hooks
    assert all(p.grad is None for p in model.parameters())


def test_each_image_in_a_batch_gets_its_own_map():
    torch.manual_seed(1)
    model = build_model("simple_cnn").eval()
    a, b = torch.randn(1, 1, 64, 64), torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        _, both = forward_with_cam(model, torch.cat([a, b]))
        _, alone = forward_with_cam(model, b)
    assert torch.allclose(both[1], alone[0], atol=1e-5)


def test_scaled_maps_are_in_unit_range():
    m = scale_maps(torch.randn(4, 7, 7))
    assert float(m.min()) >= 0 and float(m.max()) <= 1
    assert torch.allclose(m.flatten(1).max(1).values, torch.ones(4), atol=1e-5)
