"""An Inference on a DICOM radiograph -> the result objects CXR_DICOM_OUTPUTS asks for, in its study.

SR (TID 1500 report), PM (Parametric Map of the class map) and SC (overlay with the finding burned
in), each in a new series of the source's study. An image the integrity check refused gets the SR
alone, saying "not evaluated" and why (no map, no overlay: nothing was read).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from pydicom.dataset import Dataset

from app.core.config import DicomOutput
from app.dicom.codes import PLACEMENT_UIDS, Finding, NotRead
from app.dicom.measurement_report import build_report
from app.dicom.parametric_map import build_parametric_map
from app.dicom.secondary_capture import build_secondary_capture
from app.inference.pipeline import Inference
from app.inference.render import cam_at, compose
from app.schemas import Label
from models.errors import InvalidImage, UnsupportedImageType


@dataclass(frozen=True)
class DicomResults:
    """What was made for one source instance: its header, the finding (NotRead: not evaluated) and the objects
    by kind."""

    source: Dataset
    finding: Finding | NotRead
    objects: dict[DicomOutput, Dataset]

    @property
    def evaluated(self) -> bool:
        return isinstance(self.finding, Finding)

    def encoded(self) -> dict[DicomOutput, bytes]:
        return {kind: to_part10(ds) for kind, ds in self.objects.items()}

    def uid(self, kind: DicomOutput) -> str | None:
        ds = self.objects.get(kind)
        return None if ds is None else str(ds.SOPInstanceUID)


def to_part10(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def finding_of(inf: Inference) -> Finding:
    card = inf.model.card
    return Finding(pneumonia=inf.label is Label.PNEUMONIA, probability=inf.p_pneumonia, threshold=card.threshold,
                   model_name=card.name, model_version=card.version, priority=inf.priority,
                   urgent_threshold=card.urgent_threshold)


def placeable(source: Dataset | None) -> Dataset:
    if source is None:
        raise UnsupportedImageType("output=dicom needs a DICOM input: the results join the input's study")
    missing = [k for k in PLACEMENT_UIDS if not source.get(k)]
    if missing:
        raise InvalidImage(f"DICOM lacks {', '.join(missing)}: results cannot be placed in its study")
    return source


def _cannot_build(exc: Exception) -> InvalidImage:
    # the message may quote attribute values (patient data): only its type is passed on
    return InvalidImage(f"cannot build DICOM results from this instance's attributes ({type(exc).__name__})")


def build_not_evaluated(source: Dataset | None, reason: str, model_name: str, model_version: str,
                        kinds: tuple[DicomOutput, ...]) -> DicomResults:
    """The SR of an image that was not read, when SRs are configured (CPU work: run it in a thread)."""
    not_read = NotRead(reason, model_name, model_version)
    source = placeable(source)
    try:
        objects = {DicomOutput.sr: build_report(source, not_read)} if DicomOutput.sr in kinds else {}
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise _cannot_build(exc) from None
    return DicomResults(source, not_read, objects)


def build_results(inf: Inference, kinds: tuple[DicomOutput, ...], *, alpha: float = 0.5,
                  compression: str = "jpeg") -> DicomResults:
    """CPU work (class map and overlay at the source's full size): run it in a thread."""
    source = placeable(inf.decoded.dataset)
    finding = finding_of(inf)
    cam = inf.cam("PNEUMONIA")
    objects: dict[DicomOutput, Dataset] = {}
    try:
        for kind in kinds:
            if kind is DicomOutput.sr:
                objects[kind] = build_report(source, finding)
            elif kind is DicomOutput.pm:
                grid = (int(source.Columns), int(source.Rows))
                objects[kind] = build_parametric_map(source, cam_at(cam, grid), finding)
            else:
                overlay = compose(inf.decoded.pixels, cam, kind="overlay", alpha=alpha)
                objects[kind] = build_secondary_capture(source, overlay, finding, compression=compression)
    except (ValueError, TypeError, AttributeError, KeyError) as exc:  # attributes highdicom cannot copy
        raise _cannot_build(exc) from None
    return DicomResults(source, finding, objects)
