"""Pieces shared by the architectures: the conv-BN-ReLU block and the CAM-friendly head contract."""

from __future__ import annotations

import torch
from torch import nn


def conv_bn_relu(c_in: int, c_out: int, *, stride: int = 1) -> nn.Sequential:
    """3x3 convolution with 'same' padding (stride 1 keeps H and W), batch norm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class CAMClassifier(nn.Module):
    """features -> global average pool -> dropout -> linear.

    Every architecture here ends this way, which makes Grad-CAM exact from the forward
    pass alone: ``forward_features`` returns the last feature map the heatmap is built on,
    and ``classifier`` is the single linear layer after pooling.
    """

    def __init__(self, features: nn.Module, num_features: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(torch.flatten(self.pool(fmap), 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def last_conv_layer(model: nn.Module) -> nn.Module:
    """The module whose output is the last feature map (the Grad-CAM target layer)."""
    if isinstance(model, CAMClassifier):
        return model.features
    raise TypeError(f"{type(model).__name__} does not expose a last feature map")
