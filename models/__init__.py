"""Pneumonia classifiers: architectures, the shared preprocessing, training, evaluation and weights."""

from models.registry import CLASSES, build_model, list_architectures, register_model
from models.transforms import PreprocessSpec
from models.weights import LoadedModel, load_model

__all__ = ["CLASSES", "LoadedModel", "PreprocessSpec", "build_model", "list_architectures", "load_model", "register_model"]
