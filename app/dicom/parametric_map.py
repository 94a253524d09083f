"""The class map as a DICOM Parametric Map: float values in [0, 1] on the source radiograph's pixel grid.

CR and DX images have no Frame of Reference, but the Parametric Map IOD requires one, with pixel
measures and plane position/orientation. The map therefore gets a Frame of Reference of its own
(a new UID; nothing else shares it) with the source's pixel spacing (Pixel Spacing, else Imager Pixel
Spacing, else a nominal 1 mm, said in Image Comments), orientation rows/columns = x/y and origin 0;
it is pixel-aligned with its source (one value per source pixel; the Derivation Image Sequence names
the source with Spatial Locations Preserved = YES), which is what relates the two. The map is the
Grad-CAM of the PNEUMONIA class (7 x 7 at the model's input) upsampled bilinearly to the source's
size, the same values the overlay is drawn from. A Real World Value Mapping (identity, 0..1, no units) says what the values mean; a
viewer shows it with window 0.5 / 1.0 or a colour map of its choice.
"""

from __future__ import annotations

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset

from app.dicom.codes import (
    CLASS_MAP,
    MANUFACTURER,
    NO_UNITS,
    PM_SERIES_DESCRIPTION,
    PM_SERIES_NUMBER,
    PRODUCT,
    Finding,
    declare_private_scheme,
)
from app.dicom.equipment import contributing_equipment, device_uid, software_version
from app.dicom.header import with_type2


def class_map_mapping() -> hd.pm.RealWorldValueMapping:
    return hd.pm.RealWorldValueMapping(
        lut_label="GRADCAM",
        lut_explanation="Grad-CAM relevance for pneumonia, 0 (none) to 1 (maximum)",
        unit=NO_UNITS,
        value_range=(0.0, 1.0),
        slope=1.0,
        intercept=0.0,
        quantity_definition=CLASS_MAP,
    )


def build_parametric_map(source: Dataset, class_map: np.ndarray, finding: Finding) -> Dataset:
    """``class_map`` (Rows, Columns) float in [0, 1], pixel-aligned with ``source``."""
    header = with_type2(source)
    spacing, stated = pixel_spacing(source)
    # the map's own frame of reference and plane (module docstring), described on the builder's copy of
    # the source header so that highdicom places the pixel-aligned map in it
    header.FrameOfReferenceUID = hd.UID()
    header.ImagePositionPatient, header.ImageOrientationPatient = [0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    header.PixelSpacing, header.SliceThickness = list(spacing), 1.0
    values = np.clip(np.asarray(class_map, dtype=np.float32), 0.0, 1.0)
    if values.shape != (int(source.Rows), int(source.Columns)):
        raise ValueError(f"class map {values.shape} is not on the source's grid")
    pm = hd.pm.ParametricMap(
        source_images=[header],
        pixel_array=values,
        series_instance_uid=hd.UID(),
        series_number=PM_SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=PRODUCT,
        software_versions=software_version(finding.model_name, finding.model_version),
        device_serial_number=device_uid(finding.model_name, finding.model_version)[:64],
        contains_recognizable_visual_features=False,
        real_world_value_mappings=[class_map_mapping()],
        voi_lut_transformations=[hd.VOILUTTransformation(window_center=0.5, window_width=1.0)],
        content_label="GRADCAM",
        content_description="Grad-CAM of the PNEUMONIA class (AI; not for diagnostic use)",
        contributing_equipment=contributing_equipment(finding.model_name, finding.model_version),
    )
    pm.SeriesDescription = PM_SERIES_DESCRIPTION
    declare_private_scheme(pm)
    pm.Laterality = source.get("Laterality") or None  # type 2C: empty when the source does not say
    if not stated:
        pm.ImageComments = "pixel spacing unknown (the source states none): 1 mm is nominal"
    return pm


def pixel_spacing(source: Dataset) -> tuple[tuple[float, float], bool]:
    """(row, column) spacing in mm and whether the source stated it."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = source.get(keyword)
        try:
            row, column = (float(v) for v in value)  # type: ignore[union-attr]
            if row > 0 and column > 0:
                return (row, column), True
        except (TypeError, ValueError):
            continue
    return (1.0, 1.0), False
