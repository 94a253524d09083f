"""Device selection: CUDA, then Apple MPS, then CPU, unless a device is named. Called once per process."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from models.errors import CXRError

if TYPE_CHECKING:
    import torch


def no_accelerator_possible() -> bool:
    """True when this host cannot have CUDA or MPS (Linux without NVIDIA device nodes): "auto" means
    the CPU, decided without importing torch."""
    return sys.platform.startswith("linux") and not Path("/dev/nvidiactl").exists()


def serving_device(preference: str = "auto") -> str:
    """The device name for the server ("cpu", "cuda:0", ...); imports torch only when a GPU may be meant."""
    pref = (preference or "auto").strip().lower()
    if pref == "cpu" or (pref == "auto" and no_accelerator_possible()):
        return "cpu"
    return str(select_device(pref))


def select_device(preference: str = "auto") -> torch.device:
    import torch

    pref = (preference or "auto").strip().lower()
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(pref)
    except RuntimeError:
        raise CXRError(f"unknown device {preference!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise CXRError(f"device {preference!r} requested but CUDA is not available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise CXRError(f"device {preference!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    elif device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise CXRError("device 'mps' requested but MPS is not available")
    elif device.type != "cpu":
        raise CXRError(f"unsupported device {preference!r}; use auto, cpu, cuda, cuda:N or mps")
    return device
