"""torchvision's ResNet-18, adapted to 1-channel input and a 2-class head, trained from scratch."""

from __future__ import annotations

from torch import nn
from torchvision.models import resnet18

from models.architectures.common import CAMClassifier
from models.registry import register_model


@register_model("resnet18", default_image_size=224)
def build_resnet18(*, num_classes: int = 2, pretrained: bool = False) -> nn.Module:
    if pretrained:
        raise ValueError("resnet18 is trained from scratch here; no ImageNet weights are shipped for it")
    net = resnet18(weights=None)
    net.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    features = nn.Sequential(
        net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4
    )
    return CAMClassifier(features, 512, num_classes, dropout=0.2)
