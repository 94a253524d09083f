"""Coded concepts and product identity written into the result instances."""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.sr.coding import Code

MANUFACTURER = "CXR pneumonia screening (open source)"
PRODUCT = "CXR pneumonia screening"
DISCLAIMER = "AI result - not for diagnostic use"
SC_SERIES_DESCRIPTION = f"{PRODUCT} - AI heatmap (not for diagnostic use)"
SR_SERIES_DESCRIPTION = f"{PRODUCT} - AI report (not for diagnostic use)"
SC_SERIES_NUMBER = 9901
SR_SERIES_NUMBER = 9902

# What a source instance must carry for results to be placed in its study (new series, same study)
PLACEMENT_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
# SOP classes of the result instances (which modalities are read: models/integrity/dicom_rules.py)
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"

REPORT_TITLE = Code("18748-4", "LN", "Diagnostic imaging report")
PNEUMONIA = Code("233604007", "SCT", "Pneumonia")
PRESENT = Code("52101004", "SCT", "Present")
ABSENT = Code("2667000", "SCT", "Absent")
FINDING = Code("121071", "DCM", "Finding")
IMPRESSION = Code("121073", "DCM", "Impression")
SOURCE_IMAGE = Code("121112", "DCM", "Source of Measurement")
ALGORITHM_NAME = Code("111001", "DCM", "Algorithm Name")
ALGORITHM_VERSION = Code("111003", "DCM", "Algorithm Version")
PROBABILITY = Code("P_PNEUMONIA", "99CXR", "Calibrated probability of pneumonia")
THRESHOLD = Code("THRESHOLD", "99CXR", "Decision threshold on the probability of pneumonia")
NO_UNITS = Code("1", "UCUM", "no units")


@dataclass(frozen=True)
class NotRead:
    """The integrity check refused the image: the report says so, and why, instead of a finding."""

    reason: str
    model_name: str
    model_version: str

    def headline(self) -> str:
        return f"AI screening: NOT EVALUATED - {self.reason}"


@dataclass(frozen=True)
class Finding:
    """What the model said about one image: all a result instance needs to know."""

    pneumonia: bool
    probability: float
    threshold: float
    model_name: str
    model_version: str

    @property
    def label(self) -> str:
        return "PNEUMONIA" if self.pneumonia else "NORMAL"

    def headline(self) -> str:
        verdict = "pneumonia suspected" if self.pneumonia else "no pneumonia detected"
        return (f"AI screening: {verdict} (P(pneumonia) {self.probability:.2f}, "
                f"threshold {self.threshold:.2f})")
