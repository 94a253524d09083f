"""The result as HL7 FHIR R4: a transaction Bundle of DiagnosticReport, Observations, Device [, ImagingStudy].

Built and validated with ``fhir.resources`` (its R4B models: for DiagnosticReport, Observation,
Device, ImagingStudy and Bundle, R4B is R4). A transaction, so the same Bundle that
``/predict?output=fhir`` answers can be posted to a FHIR server's base URL (CXR_FHIR_URL). Every
entry is a conditional create on its identifier (``ifNoneExist``): a retried delivery creates
nothing twice, and the model's Device is created once per server.

- Device: the model (name, version, manufacturer; identifier = the device UID of the DICOM objects).
- Observation "pneumonia": SNOMED CT 233604007, value Present / Absent, interpretation POS / NEG,
  components: calibrated probability, threshold, urgent threshold; ``device`` = the model.
- Observation "worklist priority": HL7 v3 ActPriority UR (urgent) / R (routine), or not evaluated.
- DiagnosticReport: status ``preliminary`` (an AI result nobody has verified), code "Plain chest
  X-ray", the observations, a one-line conclusion, the imaging study when the input was DICOM.
  R4's DiagnosticReport has no priority element: the priority Observation carries it.
- ImagingStudy (DICOM input): study, series and instance UIDs of the image that was read.

An image the integrity check refused (STOW-RS): the report is ``cancelled``, the pneumonia
Observation has ``dataAbsentReason`` not-performed and says why, the priority is not evaluated.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from pydicom.dataset import Dataset

from app.dicom.codes import DISCLAIMER, MANUFACTURER, PRODUCT, Finding, NotRead
from app.dicom.equipment import device_uid
from models.triage import Priority

SCT = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
URI = "urn:ietf:rfc:3986"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
ACT_PRIORITY = "http://terminology.hl7.org/CodeSystem/v3-ActPriority"
ABSENT_REASON = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
REPORT_CATEGORY = "http://terminology.hl7.org/CodeSystem/v2-0074"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
LOCAL = "urn:cxr-screening:codes"  # this product's own concepts (README: FHIR)

PNEUMONIA = {"system": SCT, "code": "233604007", "display": "Pneumonia"}
PRESENT = {"system": SCT, "code": "52101004", "display": "Present"}
ABSENT = {"system": SCT, "code": "2667000", "display": "Absent"}
CHEST_XRAY = {"system": SCT, "code": "399208008", "display": "Plain chest X-ray"}
PRIORITY_CODES = {
    Priority.urgent: {"system": ACT_PRIORITY, "code": "UR", "display": "urgent"},
    Priority.routine: {"system": ACT_PRIORITY, "code": "R", "display": "routine"},
    Priority.not_evaluated: {"system": LOCAL, "code": "not-evaluated", "display": "Not evaluated"},
}


@dataclass(frozen=True)
class ImagingRef:
    """The DICOM image that was read (None for PNG/JPEG input)."""

    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    modality: str
    patient_id: str | None

    @classmethod
    def of(cls, ds: Dataset | None) -> "ImagingRef | None":
        if ds is None or not all(ds.get(k) for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
                                                     "SOPClassUID")):
            return None
        return cls(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID), str(ds.SOPClassUID),
                   str(ds.get("Modality") or "OT"), str(ds.get("PatientID") or "") or None)


def _uuid() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _quantity(value: float) -> dict[str, Any]:
    return {"value": round(float(value), 6), "unit": "probability", "system": UCUM, "code": "1"}


def _component(code: str, display: str, value: float) -> dict[str, Any]:
    return {"code": {"coding": [{"system": LOCAL, "code": code, "display": display}], "text": display},
            "valueQuantity": _quantity(value)}


def _entry(full_url: str, resource: dict[str, Any]) -> dict[str, Any]:
    ident = resource["identifier"][0]
    return {"fullUrl": full_url, "resource": resource,
            "request": {"method": "POST", "url": resource["resourceType"],
                        "ifNoneExist": f"identifier={ident['system']}|{ident['value']}"}}


def _device(model_name: str, model_version: str) -> dict[str, Any]:
    uid = device_uid(model_name, model_version)
    return {"resourceType": "Device", "identifier": [{"system": URI, "value": f"urn:oid:{uid}"}],
            "status": "active", "manufacturer": MANUFACTURER,
            "deviceName": [{"name": model_name, "type": "model-name"}, {"name": PRODUCT, "type": "manufacturer-name"}],
            "version": [{"value": model_version}],
            "note": [{"text": DISCLAIMER}]}


def _imaging_study(ref: ImagingRef) -> dict[str, Any]:
    return {"resourceType": "ImagingStudy", "identifier": [{"system": URI, "value": f"urn:oid:{ref.study_uid}"}],
            "status": "available", "subject": _subject(ref),
            "series": [{"uid": ref.series_uid, "modality": {"system": DCM, "code": ref.modality},
                        "instance": [{"uid": ref.sop_instance_uid,
                                      "sopClass": {"system": URI, "code": f"urn:oid:{ref.sop_class_uid}"}}]}]}


def _subject(ref: ImagingRef | None) -> dict[str, Any]:
    """A logical reference: the service knows the DICOM Patient ID, not the FHIR server's Patient."""
    if ref is not None and ref.patient_id:
        return {"identifier": {"value": ref.patient_id}, "display": "patient of the DICOM study"}
    return {"display": "unknown (the image carried no patient identity)"}


def result_bundle(finding: Finding | NotRead, ref: ImagingRef | None, *, result_id: str | None = None) -> Bundle:
    """``result_id``: a stable id for the report (a STOW-RS result's id, so a re-delivery matches it);
    default a new UUID."""
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    report_key = result_id or uuid.uuid4().hex
    urls = {k: _uuid() for k in ("device", "finding", "priority", "report", "study")}

    def ident(part: str) -> list[dict[str, str]]:  # stable per report: a re-delivery matches the first one
        return [{"system": URI, "value": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'cxr/{report_key}/{part}')}"}]

    subject = _subject(ref)
    entries = [_entry(urls["device"], _device(finding.model_name, finding.model_version))]
    evaluated = isinstance(finding, Finding)
    status = "preliminary" if evaluated else "cancelled"
    shared: dict[str, Any] = {  # what both observations say about themselves
        "status": status, "category": [{"coding": [{"system": CATEGORY, "code": "imaging", "display": "Imaging"}]}],
        "subject": subject, "effectiveDateTime": now, "issued": now, "device": {"reference": urls["device"]},
        **({"derivedFrom": [{"reference": urls["study"]}]} if ref is not None else {}),
    }
    observation: dict[str, Any] = {
        "resourceType": "Observation", "identifier": ident("pneumonia"), **shared,
        "code": {"coding": [PNEUMONIA], "text": "Pneumonia (AI screening)"},
    }
    if isinstance(finding, Finding):
        observation["valueCodeableConcept"] = {"coding": [PRESENT if finding.pneumonia else ABSENT]}
        observation["interpretation"] = [{"coding": [{"system": INTERPRETATION, "code": "POS" if finding.pneumonia
                                                      else "NEG", "display": "Positive" if finding.pneumonia
                                                      else "Negative"}]}]
        observation["component"] = [_component("p-pneumonia", "Calibrated probability of pneumonia",
                                               finding.probability),
                                     _component("threshold", "Decision threshold on the probability",
                                                finding.threshold)]
        if finding.urgent_threshold is not None:
            observation["component"].append(_component("urgent-threshold", "Urgent threshold on the probability",
                                                       finding.urgent_threshold))
    else:
        observation["dataAbsentReason"] = {"coding": [{"system": ABSENT_REASON, "code": "not-performed",
                                                       "display": "Not Performed"}], "text": finding.reason[:1024]}
    priority = {
        "resourceType": "Observation", "identifier": ident("priority"), **shared,
        "code": {"coding": [{"system": LOCAL, "code": "worklist-priority", "display": "Worklist priority"}],
                 "text": "Worklist priority (AI screening)"},
        "valueCodeableConcept": {"coding": [PRIORITY_CODES[finding.priority]], "text": finding.priority.value},
    }
    report: dict[str, Any] = {
        "resourceType": "DiagnosticReport", "identifier": ident("report"), "status": status,
        "category": [{"coding": [{"system": REPORT_CATEGORY, "code": "RAD", "display": "Radiology"}]}],
        "code": {"coding": [CHEST_XRAY], "text": "AI pneumonia screening of a chest radiograph"},
        "subject": subject, "effectiveDateTime": now, "issued": now,
        "result": [{"reference": urls["finding"]}, {"reference": urls["priority"]}],
        "conclusion": f"{finding.headline()}. {DISCLAIMER}",
    }
    if isinstance(finding, Finding) and finding.pneumonia:
        report["conclusionCode"] = [{"coding": [PNEUMONIA]}]
    if ref is not None:
        report["imagingStudy"] = [{"reference": urls["study"]}]
        entries.append(_entry(urls["study"], _imaging_study(ref)))
    entries += [_entry(urls["finding"], observation), _entry(urls["priority"], priority),
                _entry(urls["report"], report)]
    return Bundle.model_validate({"resourceType": "Bundle", "type": "transaction", "timestamp": now,
                                  "entry": entries})


def bundle_json(bundle: Bundle) -> bytes:
    return bundle.model_dump_json(exclude_none=True).encode("utf-8")
