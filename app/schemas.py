"""Request and response models of the HTTP API (they are the OpenAPI schema)."""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, Field


class Label(str, Enum):
    NORMAL = "NORMAL"
    PNEUMONIA = "PNEUMONIA"


class ModelRef(BaseModel):
    name: str
    version: str
    sha256: str


class Heatmap(BaseModel):
    target: Label = Field(description="class whose evidence the map shows")
    kind: str = Field(description="overlay (colormap over the X-ray) or mask (grayscale map)")
    media_type: str
    width: int
    height: int
    data: str = Field(description="base64-encoded image")


class ImageInfo(BaseModel):
    width: int
    height: int
    format: str


class Timing(BaseModel):
    decode: float
    preprocess: float
    infer: float
    explain: float
    total: float


class Prediction(BaseModel):
    prediction: Label = Field(description="PNEUMONIA when P(PNEUMONIA) >= threshold")
    probabilities: dict[Label, float] = Field(description="calibrated class probabilities; they sum to 1")
    threshold: float = Field(description="the model card's operating point on P(PNEUMONIA)")
    model: ModelRef
    heatmap: Heatmap | None = None
    image: ImageInfo
    timing_ms: Timing


class ErrorResponse(BaseModel):
    detail: str


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    device: str | None = None
    model: ModelRef | None = None
    backend: str | None = None


class ModelEntry(BaseModel):
    name: str
    version: str
    source: str = Field(description="shipped (weights/) or trained (state/)")
    active: bool
    card: dict[str, Any]


class ModelList(BaseModel):
    active: ModelRef | None
    models: list[ModelEntry]
