"""DICOM inputs and answers shared by the DICOM tests: a synthetic CR with patient data, parsing multipart answers."""

from __future__ import annotations

import io

import httpx
import pydicom

from app.dicom.multipart import check_related, parse_related
from tests.synth import chest_like, dicom_bytes

XRAY = chest_like(300, 240, seed=3)
PHI = {"PatientName": "Zyxwv^Qponm", "PatientID": "PID-8841", "PatientBirthDate": "20120304",
       "AccessionNumber": "ACC-77123", "PatientSex": "F"}
SC_CLASS = "1.2.840.10008.5.1.4.1.1.7"
SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
PM_CLASS = "1.2.840.10008.5.1.4.1.1.30"


def cr(**kw) -> bytes:
    return dicom_bytes(kw.pop("pixels", XRAY), patient=kw.pop("patient", PHI), **kw)


def mpeg2() -> bytes:
    """A CR whose pixel data claims MPEG-2 video: a transfer syntax nothing here decodes."""
    from pydicom.encaps import encapsulate

    ds = pydicom.dcmread(io.BytesIO(cr()))
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(60)])
    ds["PixelData"].VR = "OB"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def header(data: bytes) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)


def instances(response: httpx.Response) -> list[pydicom.Dataset]:
    parts = parse_related(response.content, check_related(response.headers["content-type"]))
    return [pydicom.dcmread(io.BytesIO(bytes(p.data))) for p in parts]


def read_report(ds: pydicom.Dataset) -> dict[str, object]:
    """What highdicom reads back from a TID 1500 report's image-level group: qualitative evaluations
    (concept meaning -> code value), measurements (meaning -> number), TEXT items, the source image's
    SOP Instance UID, the algorithm's name and version and the observer device UID."""
    import highdicom as hd

    report = hd.sr.Comprehensive3DSR.from_dataset(ds, copy=True)
    (group,) = report.content.get_image_measurement_groups()
    out: dict[str, object] = {
        "evaluations": {e.name.meaning: e.value.value for e in group.get_qualitative_evaluations()},
        "measurements": {m.name.meaning: float(m.value) for m in group.get_measurements()},
        "texts": {item.ConceptNameCodeSequence[0].CodeMeaning: item.TextValue
                  for item in group[0].ContentSequence if item.ValueType == "TEXT"},
        "finding_type": group.finding_type.value if group.finding_type is not None else None,
        "source": [item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
                   for item in group[0].ContentSequence if item.ValueType == "IMAGE"],
        "template": report.ContentTemplateSequence[0].TemplateIdentifier,
    }
    algorithm = {item.ConceptNameCodeSequence[0].CodeMeaning: item.TextValue
                 for item in group[0].ContentSequence if item.ValueType == "TEXT"}
    out["algorithm"] = (algorithm.get("Algorithm Name"), algorithm.get("Algorithm Version"))
    observer = {item.ConceptNameCodeSequence[0].CodeMeaning: getattr(item, "UID", None)
                for item in report.ContentSequence if item.ValueType == "UIDREF"}
    out["device_uid"] = observer.get("Device Observer UID")
    return out
