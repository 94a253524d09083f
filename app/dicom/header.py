"""The source radiograph's header as the result builders need it: no pixels, type 2 attributes present.

highdicom copies the patient and study modules from the source and reads them as attributes; a
type 2 attribute (PS3.5 7.4) may be absent from what a modality sends, and is then written empty,
as the standard allows.
"""

from __future__ import annotations

import copy

from pydicom.dataset import Dataset

TYPE2 = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyID", "StudyDate", "StudyTime",
         "AccessionNumber", "ReferringPhysicianName")
PIXELS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # Pixel Data, Float / Double Float Pixel Data


def with_type2(source: Dataset) -> Dataset:
    header = Dataset()
    for element in source:
        if element.tag not in PIXELS:
            header.add(copy.deepcopy(element))
    for keyword in TYPE2:
        if keyword not in header:
            setattr(header, keyword, None)
    return header
