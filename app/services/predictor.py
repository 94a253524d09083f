"""The /predict pipeline: decode -> preprocess -> batched inference -> explain -> response.

Decoding, preprocessing and heatmap rendering run in the threadpool; the forward pass
runs on the batcher's own thread. The event loop only awaits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from starlette.concurrency import run_in_threadpool

from app.core.config import Settings
from app.errors import NotReady
from app.schemas import Heatmap, ImageInfo, Label, Prediction, Timing
from app.services.batcher import DynamicBatcher
from app.services.explainer import HeatmapFormat, HeatmapKind, RenderedHeatmap, render_heatmap
from app.services.metrics import Metrics
from app.services.registry import ModelRegistry, ServingModel
from models.gradcam import scale_maps
from models.imaging import DecodedImage, decode_image

Target = Literal["PNEUMONIA", "NORMAL", "predicted"]
CLASS_INDEX = {"NORMAL": 0, "PNEUMONIA": 1}


@dataclass(frozen=True)
class PredictOutcome:
    prediction: Prediction
    heatmap: RenderedHeatmap | None


class Predictor:
    def __init__(self, settings: Settings, registry: ModelRegistry, batcher: DynamicBatcher, metrics: Metrics) -> None:
        self.settings = settings
        self.registry = registry
        self.batcher = batcher
        self.metrics = metrics

    def _decode_and_preprocess(self, data: bytes, model: ServingModel) -> tuple[DecodedImage, torch.Tensor, float, float]:
        t0 = time.perf_counter()
        decoded = decode_image(data, max_pixels=self.settings.max_pixels, min_side=self.settings.min_side)
        t1 = time.perf_counter()
        x = model.card.input.to_tensor(decoded.pixels)
        return decoded, x, t1 - t0, time.perf_counter() - t1

    def _render(self, pixels: np.ndarray, cam: np.ndarray, kind: HeatmapKind, fmt: HeatmapFormat) -> RenderedHeatmap:
        scaled = scale_maps(torch.from_numpy(cam[None])).numpy()[0]
        s = self.settings
        return render_heatmap(pixels, scaled, kind=kind, fmt=fmt, max_side=s.heatmap_max_side, alpha=s.heatmap_alpha,
                              png_compress_level=s.png_compress_level)

    async def predict(
        self, data: bytes, *, target: Target = "PNEUMONIA", heatmap: HeatmapKind | None = "overlay",
        fmt: HeatmapFormat = "png",
    ) -> PredictOutcome:
        model = self.registry.active
        if model is None:
            raise NotReady("model is not loaded yet")
        t_start = time.perf_counter()
        self.batcher.arriving += 1
        try:
            decoded, x, t_decode, t_pre = await run_in_threadpool(self._decode_and_preprocess, data, model)
        finally:
            self.batcher.arriving -= 1
        t_infer0 = time.perf_counter()
        result = await self.batcher.submit(x, model)
        t_infer = time.perf_counter() - t_infer0

        p_pneu = float(result.probabilities[1])
        label = Label.PNEUMONIA if p_pneu >= model.card.threshold else Label.NORMAL
        target_label = label.value if target == "predicted" else target
        rendered = None
        t_explain0 = time.perf_counter()
        if heatmap is not None:
            cam = result.cams[CLASS_INDEX[target_label]]
            rendered = await run_in_threadpool(self._render, decoded.pixels, cam, heatmap, fmt)
        t_explain = time.perf_counter() - t_explain0
        total = time.perf_counter() - t_start

        for stage, seconds in (("decode", t_decode), ("preprocess", t_pre), ("infer", t_infer), ("explain", t_explain)):
            self.metrics.stage_seconds.labels(stage).observe(seconds)
        self.metrics.predictions.labels(label.value).inc()
        ms = lambda s: round(s * 1000, 2)  # noqa: E731
        prediction = Prediction(
            prediction=label,
            probabilities={Label.NORMAL: 1.0 - p_pneu, Label.PNEUMONIA: p_pneu},
            threshold=model.card.threshold,
            model=model.ref,
            heatmap=None if rendered is None else Heatmap(
                target=Label(target_label), kind=heatmap or "overlay", media_type=rendered.media_type,
                width=rendered.width, height=rendered.height, data=rendered.base64()),
            image=ImageInfo(width=decoded.width, height=decoded.height, format=decoded.format.value),
            timing_ms=Timing(decode=ms(t_decode), preprocess=ms(t_pre), infer=ms(t_infer), explain=ms(t_explain),
                             total=ms(total)),
        )
        return PredictOutcome(prediction, rendered)
