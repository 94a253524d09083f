"""The Grad-CAM overlay as an RGB Secondary Capture in the source image's study."""

from __future__ import annotations

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset

from app.dicom.annotate import burn_in
from app.dicom.equipment import contributing_equipment
from app.dicom.codes import DISCLAIMER, MANUFACTURER, SC_SERIES_DESCRIPTION, SC_SERIES_NUMBER, Finding


def banner(finding: Finding) -> list[str]:
    return [
        f"Finding: {'PNEUMONIA suspected' if finding.pneumonia else 'no pneumonia detected'}  "
        f"P(pneumonia) = {finding.probability:.3f} (threshold {finding.threshold:.3f})",
        f"Priority: {finding.priority.value.upper()}  |  model: {finding.model_name} {finding.model_version}  |  "
        "heatmap: Grad-CAM for PNEUMONIA",
        DISCLAIMER,
    ]


def _orientation(source: Dataset) -> tuple[str, str] | None:
    """The source's Patient Orientation when it is two valid biped values (e.g. L\\F), else None."""
    value = source.get("PatientOrientation")
    try:
        pair = tuple(str(v) for v in value) if value is not None and not isinstance(value, str) else ()
        if len(pair) == 2:
            for v in pair:
                for letter in v:
                    hd.PatientOrientationValuesBiped(letter)
            return pair  # type: ignore[return-value]
    except ValueError:
        pass
    return None


JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
EXPLICIT_LITTLE = "1.2.840.10008.1.2.1"


def build_secondary_capture(source: Dataset, overlay_rgb: np.ndarray, finding: Finding, *,
                            compression: str = "jpeg") -> Dataset:
    """``overlay_rgb`` (H, W, 3) uint8 at the source's size -> SC instance with the finding burned in.

    ``compression``: "jpeg" (baseline, lossy; the default) or "none".

    Patient and study attributes come from ``source`` (highdicom copies the patient and
    general study modules), so the PACS files it next to the radiograph.
    """
    pixels = burn_in(np.ascontiguousarray(overlay_rgb, dtype=np.uint8), banner(finding))
    orientation = _orientation(source)
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source,
        pixel_array=pixels,
        photometric_interpretation=(hd.PhotometricInterpretationValues.YBR_FULL_422 if compression == "jpeg"
                                    else hd.PhotometricInterpretationValues.RGB),
        bits_allocated=8,
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        series_instance_uid=hd.UID(),
        series_number=SC_SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        patient_orientation=orientation or ("L", "F"),
        # JPEG baseline: a 2048² overlay is ~1 MB instead of 12 MB, and every PACS reads it;
        # "none": explicit VR little endian, lossless
        transfer_syntax_uid=JPEG_BASELINE if compression == "jpeg" else EXPLICIT_LITTLE,
        contributing_equipment=contributing_equipment(finding.model_name, finding.model_version),
    )
    if compression == "jpeg":  # General Image module: say that lossy compression was applied
        sc.LossyImageCompression = "01"
        sc.LossyImageCompressionMethod = "ISO_10918_1"
    if orientation is None:
        sc.PatientOrientation = None  # unknown: left empty (type 2) rather than guessed
    sc.SeriesDescription = SC_SERIES_DESCRIPTION
    sc.BodyPartExamined = str(source.get("BodyPartExamined", "") or "CHEST")
    if "Laterality" in source:
        sc.Laterality = source.Laterality
    sc.ImageType = ["DERIVED", "SECONDARY"]
    sc.BurnedInAnnotation = "YES"
    sc.DerivationDescription = "Grad-CAM heatmap of the PNEUMONIA class over the source radiograph"
    sc.ImageComments = f"{finding.headline()}; model {finding.model_name} {finding.model_version}. {DISCLAIMER}"
    ref = Dataset()
    ref.ReferencedSOPClassUID = source.SOPClassUID
    ref.ReferencedSOPInstanceUID = source.SOPInstanceUID
    sc.SourceImageSequence = [ref]
    return sc
