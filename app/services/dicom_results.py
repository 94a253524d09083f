"""An Inference on a DICOM radiograph -> the two result instances (SC overlay + SR) in its study."""

from __future__ import annotations

import io
from dataclasses import dataclass

from pydicom.dataset import Dataset

from app.dicom.codes import Finding
from app.dicom.secondary_capture import build_secondary_capture
from app.dicom.structured_report import build_report
from app.schemas import Label
from app.services.explainer import compose
from app.services.predictor import Inference
from models.errors import InvalidImage, UnsupportedImageType


@dataclass(frozen=True)
class DicomResults:
    finding: Finding
    sc: Dataset
    sr: Dataset

    def encoded(self) -> tuple[bytes, bytes]:
        return to_part10(self.sc), to_part10(self.sr)


def to_part10(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def finding_of(inf: Inference) -> Finding:
    card = inf.model.card
    return Finding(pneumonia=inf.label is Label.PNEUMONIA, probability=inf.p_pneumonia, threshold=card.threshold,
                   model_name=card.name, model_version=card.version)


def build_results(inf: Inference, *, alpha: float = 0.5, compression: str = "jpeg") -> DicomResults:
    """CPU work (overlay at the source's full size, SC, SR): run it in a thread."""
    source = inf.decoded.dataset
    if source is None:
        raise UnsupportedImageType("output=dicom needs a DICOM input: the results join the input's study")
    missing = [k for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID") if not source.get(k)]
    if missing:
        raise InvalidImage(f"DICOM lacks {', '.join(missing)}: results cannot be placed in its study")
    finding = finding_of(inf)
    overlay = compose(inf.decoded.pixels, inf.cam("PNEUMONIA"), kind="overlay", alpha=alpha)
    try:
        sc = build_secondary_capture(source, overlay, finding, compression=compression)
        return DicomResults(finding, sc, build_report(source, finding))
    except (ValueError, TypeError, AttributeError, KeyError) as exc:  # attributes highdicom cannot copy
        # the message may quote attribute values (patient data): only its type is passed on
        raise InvalidImage(f"cannot build DICOM results from this instance's attributes ({type(exc).__name__})") from None
