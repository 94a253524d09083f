"""The /predict pipeline: decode -> integrity -> preprocess -> batched inference -> explain -> response.

One worker thread decodes, starts the integrity guard on the guard's own threads, preprocesses and,
when the request is alone, runs the forward pass and draws the heatmap (``_prepare``); a request that
is not alone is batched on the batcher's thread and drawn in the threadpool. The event loop only awaits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Callable, Literal

import numpy as np
from starlette.concurrency import run_in_threadpool

from app.core.config import Settings
from app.errors import NotEvaluated, NotReady
from app.schemas import Heatmap, ImageInfo, ImagePreview, IntegrityReport, Label, Prediction, Timing
from app.inference.batcher import BatchResult, DynamicBatcher
from app.inference.png import IdleHelper
from app.inference.render import HeatmapFormat, HeatmapKind, RenderedHeatmap, render_heatmap, render_preview
from app.core.metrics import Metrics
from app.inference.catalog import ModelRegistry
from app.inference.serving import ServingModel
from models.imaging import DecodedImage, decode_image
from models.integrity.check import IntegrityResult, header_verdict, judge
from models.integrity.dicom_rules import HeaderVerdict
from models.postprocess import scale_maps
from models.integrity.guard_card import GuardScorer
from models.triage import Priority, priority

log = logging.getLogger(__name__)
Target = Literal["PNEUMONIA", "NORMAL", "predicted"]
IntegrityMode = Literal["enforce", "report"]
CLASS_INDEX = {"NORMAL": 0, "PNEUMONIA": 1}
REPORT_WARNING = ("integrity=report: scored although the integrity check refused it ({reason}); "
                  "not a valid screening result")
INTEGRITY_OFF_WARNING = "the input-integrity check is off on this server (CXR_INTEGRITY=off)"


@dataclass(frozen=True)
class PredictOutcome:
    prediction: Prediction
    heatmap: RenderedHeatmap | None
    inference: "Inference"  # what the answer was built from (the audit trail records it)


@dataclass(frozen=True)
class Prepared:
    """An upload decoded and preprocessed, its pixel check running (``_prepare``)."""

    decoded: DecodedImage
    header: HeaderVerdict
    x: np.ndarray | None  # the model's input; None: refused by its header and not to be scored
    check: Future[tuple[float, float]] | None  # the guard's (score, seconds); None: the check is off
    seconds: dict[str, float]
    result: BatchResult | None = None  # the forward pass, when it ran here (DynamicBatcher.run_alone)
    explained: Explained | None = None  # its pictures, made right after it


@dataclass(frozen=True)
class Explained:
    """The heatmap and preview of one answer (``Predictor._explain``)."""

    heatmap: RenderedHeatmap | None
    preview: RenderedHeatmap | None
    target: str  # the class the heatmap shows
    seconds: float


Explainer = Callable[[np.ndarray, np.ndarray, Label], Explained]  # (pixels, class maps, label) -> pictures


def target_class(target: Target, label: Label) -> str:
    """The class a heatmap for ``target`` shows: "predicted" is the answer's own label."""
    return label.value if target == "predicted" else target


def class_map(cams: np.ndarray, name: str) -> np.ndarray:
    """The raw class maps' map of class ``name``, scaled to [0, 1]."""
    return scale_maps(cams[CLASS_INDEX[name]][None])[0]


@dataclass(frozen=True)
class Inference:
    """One image through decode -> preprocess -> model: what every output format is built from."""

    decoded: DecodedImage
    model: ServingModel
    p_pneumonia: float
    label: Label
    cams: np.ndarray  # (classes, h, w) raw class maps
    seconds: dict[str, float]
    integrity: IntegrityResult | None = None  # None: the check is off
    warnings: tuple[str, ...] = ()

    @property
    def priority(self) -> Priority:
        """Worklist priority from the card's urgent point (models/triage.py)."""
        card = self.model.card
        return priority(self.p_pneumonia, card.threshold, card.urgent_threshold)

    def cam(self, target: Target = "PNEUMONIA") -> np.ndarray:
        """The class map for ``target`` scaled to [0, 1]."""
        return class_map(self.cams, target_class(target, self.label))


class Predictor:
    def __init__(self, settings: Settings, registry: ModelRegistry, batcher: DynamicBatcher, metrics: Metrics) -> None:
        self.settings = settings
        self.registry = registry
        self.batcher = batcher
        self.metrics = metrics
        self.guard: GuardScorer | None = None  # set at startup unless CXR_INTEGRITY=off
        self.render_helper = IdleHelper() if settings.heatmap_png_threads > 1 else None
        # the guard scores beside the preprocessing and the forward pass: one single-threaded run per core
        # this process may use (its CPU affinity: a container's cpuset, taskset)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        self._guard_pool = ThreadPoolExecutor(max_workers=cores, thread_name_prefix="cxr-guard")

    def close(self) -> None:
        if self.render_helper is not None:
            self.render_helper.close()
        self._guard_pool.shutdown(wait=True)

    def _decode(self, data: bytes) -> tuple[DecodedImage, HeaderVerdict, float]:
        t0 = time.perf_counter()
        decoded = decode_image(data, max_pixels=self.settings.max_pixels, min_side=self.settings.min_side)
        return decoded, header_verdict(decoded), time.perf_counter() - t0

    def _preprocess(self, pixels: np.ndarray, model: ServingModel) -> tuple[np.ndarray, float]:
        t0 = time.perf_counter()
        return model.card.input.to_array(pixels), time.perf_counter() - t0

    def _score(self, pixels: np.ndarray) -> tuple[float, float]:
        t = time.perf_counter()
        assert self.guard is not None
        return self.guard.score(pixels), time.perf_counter() - t

    def _prepare(self, data: bytes, model: ServingModel, score_refused: bool,
                 explain: Explainer | None = None) -> Prepared:
        """Decode; start the pixel check on the guard's threads; preprocess here meanwhile; and when this request
        is alone, run its forward pass here too (DynamicBatcher.run_alone) and then ``explain`` it, unless the
        check refuses it. One thread hop for all of it: each hop through the event loop cost 0.3-0.8 ms of a
        1-client answer."""
        decoded, header, decode_s = self._decode(data)
        check = None if self.guard is None else self._guard_pool.submit(self._score, decoded.pixels)
        x, result, explained = None, None, None
        seconds = {"decode": decode_s, "preprocess": 0.0, "integrity": 0.0, "infer": 0.0}
        # an image its header already refuses does not reach the classifier unless it is to be scored anyway
        if check is None or not header.refusal or score_refused:
            x, seconds["preprocess"] = self._preprocess(decoded.pixels, model)
            t = time.perf_counter()
            if (result := self.batcher.run_alone(x, model)) is not None:
                seconds["infer"] = time.perf_counter() - t
                if explain is not None and (check is None or score_refused or self._passes(check, header)):
                    explained = explain(decoded.pixels, result.cams, self._label(result, model))
        return Prepared(decoded, header, x, check, seconds, result, explained)

    def _passes(self, check: Future[tuple[float, float]], header: HeaderVerdict) -> bool:
        """Whether the pixel check (waited for here, on a worker thread) and the header rules accept it."""
        assert self.guard is not None
        return judge(header, check.result()[0], self.guard.card.threshold).accepted

    @staticmethod
    def _label(result: BatchResult, model: ServingModel) -> Label:
        return Label.PNEUMONIA if float(result.probabilities[1]) >= model.card.threshold else Label.NORMAL

    def _explain(self, pixels: np.ndarray, cams: np.ndarray, label: Label, *, target: Target,
                 kind: HeatmapKind | None, fmt: HeatmapFormat, preview: bool) -> Explained:
        t0 = time.perf_counter()
        name = target_class(target, label)
        heat, seen = self._render(pixels, None if kind is None else class_map(cams, name), kind, fmt, preview)
        return Explained(heat, seen, name, time.perf_counter() - t0)

    async def _check(self, prep: Prepared, model: ServingModel, mode: IntegrityMode) -> IntegrityResult:
        """The pixel check's score (computed beside the preprocessing and the forward pass) with the header
        rules, counted and timed; NotEvaluated when refused and enforced."""
        assert self.guard is not None and prep.check is not None
        score, prep.seconds["integrity"] = await asyncio.wrap_future(prep.check)
        integrity = judge(prep.header, score, self.guard.card.threshold)
        self.metrics.integrity.labels(integrity.code).inc()
        self.metrics.stage_seconds.labels("integrity").observe(prep.seconds["integrity"])
        if not integrity.accepted and mode == "enforce":
            raise NotEvaluated(integrity, list(integrity.warnings), dataset=prep.decoded.dataset,
                               model=(model.card.name, model.card.version))
        return integrity

    def _render(self, pixels: np.ndarray, cam: np.ndarray | None, kind: HeatmapKind | None, fmt: HeatmapFormat,
                preview: bool) -> tuple[RenderedHeatmap | None, RenderedHeatmap | None]:
        s = self.settings
        heat = None if kind is None or cam is None else render_heatmap(
            pixels, cam, kind=kind, fmt=fmt, max_side=s.heatmap_max_side, alpha=s.heatmap_alpha,
            png_compress_level=s.png_compress_level, helper=self.render_helper)
        seen = render_preview(pixels, max_side=s.heatmap_max_side, png_compress_level=s.png_compress_level,
                              helper=self.render_helper) if preview else None
        return heat, seen

    async def infer(self, data: bytes, *, integrity: IntegrityMode = "enforce") -> Inference:
        """Decode, check integrity, preprocess and run the active model (batched with concurrent requests).

        NotEvaluated when the integrity check refuses the image, unless ``integrity`` is "report"
        (research use: scored anyway, with a warning, and logged)."""
        return (await self._infer(data, integrity, None))[0]

    async def _infer(self, data: bytes, integrity: IntegrityMode,
                     explain: Explainer | None) -> tuple[Inference, Explained | None]:
        """``infer``, and ``explain``'s pictures when they were made beside a lone forward pass."""
        model = self.registry.active
        if model is None:
            raise NotReady("model is not loaded yet")
        self.batcher.arriving += 1  # on its way to the batcher: worth waiting for
        try:
            prep = await run_in_threadpool(self._prepare, data, model, integrity == "report", explain)
        finally:
            self.batcher.arriving -= 1
        seconds = prep.seconds
        t_infer0 = time.perf_counter()
        forward = None if prep.x is None or prep.result is not None else asyncio.ensure_future(
            self.batcher.submit(prep.x, model))
        checked: IntegrityResult | None = None
        if prep.check is not None:
            try:
                checked = await self._check(prep, model, integrity)
            except BaseException:
                if forward is not None:  # a refused image's batch slot is dropped (the batcher skips it)
                    forward.cancel()
                    forward.add_done_callback(lambda f: f.cancelled() or f.exception())  # its error is moot now
                raise
        if forward is not None:
            result = await forward
            seconds["infer"] = time.perf_counter() - t_infer0
        else:  # it ran beside its preparation (not preprocessed means refused by its header: _check raised)
            assert prep.result is not None
            result = prep.result
        p_pneu, label = float(result.probabilities[1]), self._label(result, model)
        for stage in ("decode", "preprocess", "infer"):
            self.metrics.stage_seconds.labels(stage).observe(seconds[stage])
        self.metrics.predictions.labels(label.value).inc()
        warnings = list(checked.warnings) if checked is not None else [INTEGRITY_OFF_WARNING]
        if checked is not None and not checked.accepted:
            log.warning("integrity=report used: an image refused by the integrity check (%s) was scored", checked.code)
            warnings.insert(0, REPORT_WARNING.format(reason=checked.reason))
        return Inference(prep.decoded, model, p_pneu, label, np.asarray(result.cams), seconds, checked,
                         tuple(warnings)), prep.explained

    async def predict(
        self, data: bytes, *, target: Target = "PNEUMONIA", heatmap: HeatmapKind | None = "overlay",
        fmt: HeatmapFormat = "png", integrity: IntegrityMode = "enforce", preview: bool = False,
    ) -> PredictOutcome:
        t_start = time.perf_counter()
        explain = None if heatmap is None and not preview else partial(
            self._explain, target=target, kind=heatmap, fmt=fmt, preview=preview)
        inf, explained = await self._infer(data, integrity, explain)
        if explain is not None and explained is None:  # batched: made here
            explained = await run_in_threadpool(explain, inf.decoded.pixels, inf.cams, inf.label)
        rendered, seen, t_explain = (None, None, 0.0) if explained is None else (
            explained.heatmap, explained.preview, explained.seconds)
        total = time.perf_counter() - t_start
        self.metrics.stage_seconds.labels("explain").observe(t_explain)
        ms = lambda s: round(s * 1000, 2)  # noqa: E731
        prediction = Prediction(
            prediction=inf.label,
            probabilities={Label.NORMAL: 1.0 - inf.p_pneumonia, Label.PNEUMONIA: inf.p_pneumonia},
            threshold=inf.model.card.threshold,
            priority=inf.priority,
            urgent_threshold=inf.model.card.urgent_threshold,
            model=inf.model.ref,
            heatmap=None if explained is None or rendered is None else Heatmap(
                target=Label(explained.target), kind=heatmap or "overlay", media_type=rendered.media_type,
                width=rendered.width, height=rendered.height, data=rendered.base64()),
            image=ImageInfo(width=inf.decoded.width, height=inf.decoded.height, format=inf.decoded.format.value),
            preview=None if seen is None else ImagePreview(media_type=seen.media_type, width=seen.width,
                                                           height=seen.height, data=seen.base64()),
            timing_ms=Timing(decode=ms(inf.seconds["decode"]), integrity=ms(inf.seconds["integrity"]),
                             preprocess=ms(inf.seconds["preprocess"]), infer=ms(inf.seconds["infer"]),
                             explain=ms(t_explain), total=ms(total)),
            integrity=None if inf.integrity is None else IntegrityReport.of(inf.integrity),
            warnings=list(inf.warnings),
        )
        return PredictOutcome(prediction, rendered, inf)
