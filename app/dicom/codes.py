"""Coded concepts and product identity written into the result instances."""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.sr.coding import Code

from models.triage import Priority

MANUFACTURER = "CXR pneumonia screening (open source)"
PRODUCT = "CXR pneumonia screening"
DISCLAIMER = "AI result - not for diagnostic use"
SC_SERIES_DESCRIPTION = f"{PRODUCT} - AI heatmap (not for diagnostic use)"
SR_SERIES_DESCRIPTION = f"{PRODUCT} - AI report (not for diagnostic use)"
SC_SERIES_NUMBER = 9901
SR_SERIES_NUMBER = 9902
PM_SERIES_NUMBER = 9903
PM_SERIES_DESCRIPTION = f"{PRODUCT} - AI class map (not for diagnostic use)"

# What a source instance must carry for results to be placed in its study (new series, same study)
PLACEMENT_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
# SOP classes of the result instances (which modalities are read: models/integrity/dicom_rules.py)
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"
PARAMETRIC_MAP = "1.2.840.10008.5.1.4.1.1.30"

PNEUMONIA = Code("233604007", "SCT", "Pneumonia")
PRESENT = Code("52101004", "SCT", "Present")
ABSENT = Code("2667000", "SCT", "Absent")
CHEST_RADIOGRAPH = Code("399208008", "SCT", "Plain chest X-ray")  # the procedure reported
TRACKING_LABEL = "pneumonia screening"
PROCESSING_ALGORITHM = Code("109103", "DCM", "Processing Algorithm")  # Contributing Equipment purpose
PRIVATE_SCHEME = "99CXR"
# private concepts (coding scheme 99CXR, described in the README's conformance section)
PROBABILITY = Code("P_PNEUMONIA", "99CXR", "Calibrated probability of pneumonia")
THRESHOLD = Code("THRESHOLD", "99CXR", "Decision threshold on the probability of pneumonia")
URGENT_THRESHOLD = Code("URGENT_THRESHOLD", "99CXR", "Urgent threshold on the probability of pneumonia")
PRIORITY = Code("PRIORITY", "99CXR", "Worklist priority")
PRIORITY_VALUES = {
    Priority.urgent: Code("URGENT", "99CXR", "Urgent"),
    Priority.routine: Code("ROUTINE", "99CXR", "Routine"),
    Priority.not_evaluated: Code("NOT_EVALUATED", "99CXR", "Not evaluated"),
}
NOT_EVALUATED_REASON = Code("NOT_EVAL_REASON", "99CXR", "Reason the image was not evaluated")
CLASS_MAP = Code("GRADCAM_PNEU", "99CXR", "Grad-CAM relevance for pneumonia")
NO_UNITS = Code("1", "UCUM", "no units")


def declare_private_scheme(ds: Dataset) -> None:
    """Coding Scheme Identification (PS3.3 C.12.1.1.2.1): a private scheme used in the object is named."""
    item = Dataset()
    item.CodingSchemeDesignator = PRIVATE_SCHEME
    item.CodingSchemeName = f"{PRODUCT} private concepts"
    item.CodingSchemeResponsibleOrganization = MANUFACTURER
    ds.CodingSchemeIdentificationSequence = [item]


@dataclass(frozen=True)
class NotRead:
    """The integrity check refused the image: the report says so, and why, instead of a finding."""

    reason: str
    model_name: str
    model_version: str
    priority: Priority = Priority.not_evaluated

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
    priority: Priority = Priority.routine
    urgent_threshold: float | None = None

    @property
    def label(self) -> str:
        return "PNEUMONIA" if self.pneumonia else "NORMAL"

    def headline(self) -> str:
        verdict = "pneumonia suspected" if self.pneumonia else "no pneumonia detected"
        return (f"AI screening: {verdict} (P(pneumonia) {self.probability:.2f}, "
                f"threshold {self.threshold:.2f}); priority {self.priority.value}")
