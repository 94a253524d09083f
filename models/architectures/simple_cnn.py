"""A small custom CNN: conv-BN-ReLU blocks, max-pool downsampling, channels doubling, GAP head."""

from __future__ import annotations

from torch import nn

from models.architectures.common import CAMClassifier, conv_bn_relu
from models.registry import register_model


def _stage(c_in: int, c_out: int, *, convs: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = [conv_bn_relu(c_in, c_out)]
    layers += [conv_bn_relu(c_out, c_out) for _ in range(convs - 1)]
    layers.append(nn.MaxPool2d(2))
    if dropout > 0:
        layers.append(nn.Dropout2d(dropout))
    return nn.Sequential(*layers)


@register_model("simple_cnn", default_image_size=224)
def build_simple_cnn(*, num_classes: int = 2, pretrained: bool = False, width: int = 24) -> nn.Module:
    """Stride-2 stem, then four stages that halve the size and double the channels.

    224 px input: 112 (stem) -> 56 -> 28 -> 14 -> 7 -> GAP. About 2.6 M parameters at the default
    width 24 (a test pins the count), so it trains at CPU speed. Dropout2d only in the deep stages, where
    whole-channel dropout regularises without starving the early edge detectors.
    """
    if pretrained:
        raise ValueError("simple_cnn has no pretrained weights")
    w = width
    features = nn.Sequential(
        conv_bn_relu(1, w, stride=2),
        _stage(w, w * 2, convs=1, dropout=0.0),
        _stage(w * 2, w * 4, convs=2, dropout=0.0),
        _stage(w * 4, w * 8, convs=2, dropout=0.05),
        _stage(w * 8, w * 16, convs=2, dropout=0.1),
    )
    model = CAMClassifier(features, w * 16, num_classes, dropout=0.2)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return model
