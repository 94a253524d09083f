"""CNN builders with two-class heads. Importing this package registers them all."""

from models.architectures import efficientnet, resnet, simple_cnn  # noqa: F401
from models.architectures.common import last_conv_layer

__all__ = ["last_conv_layer"]
