"""Grad-CAM for the project's CNNs, in two interchangeable ways.

Every architecture here ends with global average pooling followed by one linear layer.
For such a head the gradient of class score y_c with respect to the last feature map A is
w_c / (H*W) at every position, so the Grad-CAM weights are alpha_ck = w_ck / (H*W) and
Grad-CAM(c) = ReLU(sum_k w_ck A_k) / (H*W): the class activation map, available from the
forward pass alone. ``forward_with_cam`` uses that (cost: one small einsum). After the
standard [0,1] scaling the 1/(H*W) factor cancels.

``gradcam_backward`` is the general method for any head (one forward and one backward per
batch, each image its own target): hooks live in a context manager and are removed in
``finally``, the gradient comes from a tensor hook, and nothing is stored on the module,
so concurrent batches on different threads share no hook state.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


def cam_from_features(fmap: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) features and (K, C) linear weights -> (N, K, h, w) unscaled class maps."""
    return torch.einsum("nchw,kc->nkhw", fmap, weight.to(fmap.dtype))


def forward_with_cam(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward pass -> (logits (N, K), class maps (N, K, h, w)) for every class."""
    fmap = model.forward_features(x)
    logits = model.forward_head(fmap)
    return logits, cam_from_features(fmap, model.classifier.weight)


@contextmanager
def _capture(layer: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    store: dict[str, torch.Tensor] = {}

    def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        store["activation"] = output

        def save_grad(grad: torch.Tensor) -> None:
            store["gradient"] = grad

        output.register_hook(save_grad)

    handle = layer.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def gradcam_backward(
    model: nn.Module, x: torch.Tensor, target_layer: nn.Module, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """General Grad-CAM: (logits (N, K), maps (N, h, w)) for ``targets`` (N,) class indices.

    Batch norm in eval mode keeps the images independent, so the backward of the sum of
    each image's target score gives every image its own gradient in one pass.
    """
    with torch.enable_grad(), _capture(target_layer) as store:
        x = x.detach().requires_grad_(False)
        logits = model(x)
        chosen = logits.gather(1, targets.view(-1, 1)).sum()
        model.zero_grad(set_to_none=True)
        grads = torch.autograd.grad(chosen, store["activation"], retain_graph=False)[0]
        acts = store["activation"].detach()
    weights = grads.mean(dim=(2, 3), keepdim=True)
    return logits.detach(), (weights * acts).sum(dim=1)


def scale_maps(maps: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """ReLU, then per-map min-max to [0, 1] (the scaling pytorch-grad-cam applies). (N, h, w) in and out."""
    m = maps.clamp(min=0)
    flat = m.flatten(1)
    lo = flat.min(dim=1).values.view(-1, 1, 1)
    m = m - lo
    hi = m.flatten(1).max(dim=1).values.view(-1, 1, 1)
    return m / (hi + eps)
