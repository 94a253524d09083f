"""An Inference on a DICOM radiograph -> the two result instances (SC overlay + SR) in its study."""

from __future__ import annotations

import io
from dataclasses import dataclass

from pydicom.dataset import Dataset

from app.dicom.codes import PLACEMENT_UIDS, Finding, NotRead
from app.dicom.secondary_capture import build_secondary_capture
from app.dicom.structured_report import build_report
from app.schemas import Label
from app.inference.render import compose
from app.inference.pipeline import Inference
from models.errors import InvalidImage, UnsupportedImageType


@dataclass(frozen=True)
class DicomResults:
    finding: Finding
    sc: Dataset
    sr: Dataset

    def encoded(self) -> tuple[bytes, bytes]:
        return to_part10(self.sc), to_part10(self.sr)


@dataclass(frozen=True)
class NotEvaluatedReport:
    """What an image the integrity check refused gets: a report saying so, no heatmap."""

    not_read: NotRead
    sr: Dataset


def to_part10(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def finding_of(inf: Inference) -> Finding:
    card = inf.model.card
    return Finding(pneumonia=inf.label is Label.PNEUMONIA, probability=inf.p_pneumonia, threshold=card.threshold,
                   model_name=card.name, model_version=card.version)


def _placeable(source: Dataset | None) -> Dataset:
    if source is None:
        raise UnsupportedImageType("output=dicom needs a DICOM input: the results join the input's study")
    missing = [k for k in PLACEMENT_UIDS if not source.get(k)]
    if missing:
        raise InvalidImage(f"DICOM lacks {', '.join(missing)}: results cannot be placed in its study")
    return source


def build_not_evaluated(source: Dataset | None, reason: str, model_name: str, model_version: str) -> NotEvaluatedReport:
    """The SR of an image that was not read (CPU work: run it in a thread)."""
    not_read = NotRead(reason, model_name, model_version)
    try:
        return NotEvaluatedReport(not_read, build_report(_placeable(source), not_read))
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise InvalidImage(f"cannot build DICOM results from this instance's attributes ({type(exc).__name__})") from None


def build_results(inf: Inference, *, alpha: float = 0.5, compression: str = "jpeg") -> DicomResults:
    """CPU work (overlay at the source's full size, SC, SR): run it in a thread."""
    source = _placeable(inf.decoded.dataset)
    finding = finding_of(inf)
    overlay = compose(inf.decoded.pixels, inf.cam("PNEUMONIA"), kind="overlay", alpha=alpha)
    try:
        sc = build_secondary_capture(source, overlay, finding, compression=compression)
        return DicomResults(finding, sc, build_report(source, finding))
    except (ValueError, TypeError, AttributeError, KeyError) as exc:  # attributes highdicom cannot copy
        # the message may quote attribute values (patient data): only its type is passed on
        raise InvalidImage(f"cannot build DICOM results from this instance's attributes ({type(exc).__name__})") from None
