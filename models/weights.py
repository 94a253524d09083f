"""Save and load weights as safetensors (never pickle), verified against the card's sha256."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from models.card import ModelCard, read_card, write_card
from models.card_markdown import write_markdown
from models.digest import sha256_file, verify_file  # noqa: F401  (re-exported: the weights' rule)
from models.errors import WeightsError
from models.registry import build_model



def save_weights(model: nn.Module, path: Path) -> str:
    """Write the state dict (contiguous CPU tensors) and return the file's sha256."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path))
    return sha256_file(path)


def save_model(folder: Path, model: nn.Module, card: ModelCard) -> ModelCard:
    """Write ``model.safetensors``, then ``card.json`` (with the file's real sha256) and its readable
    ``MODEL_CARD.md`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    digest = save_weights(model, folder / card.weights_file)
    card = card.model_copy(update={"sha256": digest})
    write_card(folder, card)
    write_markdown(folder, card)
    return card


@dataclass
class LoadedModel:
    card: ModelCard
    model: nn.Module
    folder: Path


def load_model(folder: Path, *, device: torch.device | str = "cpu") -> LoadedModel:
    """Read the card, verify the weights' sha256, build the architecture and load the tensors (eval mode)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise WeightsError(f"model folder {folder} does not exist")
    card = read_card(folder)
    path = folder / card.weights_file
    verify_file(path, card.sha256, "weights file")
    model = build_model(card.architecture, num_classes=len(card.classes))
    try:
        model.load_state_dict(load_file(str(path)), strict=True)
    except (RuntimeError, OSError, ValueError) as exc:
        raise WeightsError(f"weights file {path} does not fit architecture {card.architecture}: {str(exc)[:200]}") from None
    model.eval().to(device)
    return LoadedModel(card=card, model=model, folder=folder)
