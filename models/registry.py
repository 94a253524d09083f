"""Architecture registry: builders are registered by name and looked up by the card's ``architecture``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # the registry itself loads without torch (the ONNX-serving process has none)
    from torch import nn

from models.errors import ModelNotFound

CLASSES: tuple[str, str] = ("NORMAL", "PNEUMONIA")


class Builder(Protocol):
    def __call__(self, *, num_classes: int = 2, pretrained: bool = False) -> nn.Module: ...


_BUILDERS: dict[str, Builder] = {}
_DEFAULT_SIZES: dict[str, int] = {}


def register_model(name: str, *, default_image_size: int = 224) -> Callable[[Builder], Builder]:
    """Decorator: register ``build_<arch>`` under ``name``; a second registration is an error."""

    def wrap(fn: Builder) -> Builder:
        if name in _BUILDERS:
            raise ValueError(f"architecture {name!r} is already registered")
        _BUILDERS[name] = fn
        _DEFAULT_SIZES[name] = default_image_size
        return fn

    return wrap


def list_architectures() -> list[str]:
    _ensure_loaded()
    return sorted(_BUILDERS)


def default_image_size(name: str) -> int:
    _ensure_loaded()
    return _DEFAULT_SIZES[name]


def build_model(name: str, *, num_classes: int = len(CLASSES), pretrained: bool = False) -> nn.Module:
    """Build an architecture by name. ``pretrained`` only matters for backbones that have ImageNet weights."""
    _ensure_loaded()
    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise ModelNotFound(f"unknown architecture {name!r}; available: {', '.join(sorted(_BUILDERS))}") from None
    return builder(num_classes=num_classes, pretrained=pretrained)


def _ensure_loaded() -> None:
    # Importing the package registers every builder exactly once.
    import models.architectures  # noqa: F401
