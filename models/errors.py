"""Domain errors raised by the models package.

The service maps each to an HTTP status in one place (app/errors.py); the CLI prints
them as one-line messages. Each carries a fixed, human-readable ``detail``.
"""

from __future__ import annotations


class CXRError(Exception):
    """Base class: ``detail`` is safe to show to a client (no patient data)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class UnsupportedImageType(CXRError):
    """The bytes are not PNG, JPEG or DICOM."""


class InvalidImage(CXRError):
    """The bytes claim a supported format but cannot be decoded into a usable radiograph."""


class ImageTooLarge(CXRError):
    """The image declares more pixels than the configured limit."""


class DatasetError(CXRError):
    """A training or evaluation folder is unusable (missing classes, no images, bad layout)."""


class WeightsError(CXRError):
    """A weights file or model card is missing, corrupt or does not match its checksum."""


class ModelNotFound(CXRError):
    """No architecture or shipped model has this name."""
