"""The finding as a Comprehensive SR: coded pneumonia present/absent, probability, threshold, model, source image."""

from __future__ import annotations

import uuid

import highdicom as hd
from pydicom.dataset import Dataset

from app.dicom.codes import (
    ABSENT,
    ALGORITHM_NAME,
    ALGORITHM_VERSION,
    FINDING,
    IMPRESSION,
    MANUFACTURER,
    NO_UNITS,
    PNEUMONIA,
    PRESENT,
    PROBABILITY,
    PRODUCT,
    REPORT_TITLE,
    SOURCE_IMAGE,
    SR_SERIES_DESCRIPTION,
    SR_SERIES_NUMBER,
    THRESHOLD,
    DISCLAIMER,
    Finding,
    NotRead,
)

R = hd.sr.RelationshipTypeValues


def device_uid(finding: Finding | NotRead) -> str:
    """The observer device's UID: the same for every report of one model name + version (a PACS can
    group reports by algorithm), different for another version: a 2.25 UID from a name-based UUID
    (RFC 4122 version 5; PS3.5 B.2)."""
    name = f"{PRODUCT}/{finding.model_name}/{finding.model_version}"
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_URL, name).int}"


def report_content(source: Dataset, finding: Finding | NotRead) -> hd.sr.ContainerContentItem:
    """The content tree (PS3.3 C.17.3):

    CONTAINER Diagnostic imaging report
      HAS OBS CONTEXT  observer = device (the model)
      CONTAINS CODE Finding = Pneumonia
        HAS PROPERTIES CODE Pneumonia = Present | Absent
        HAS PROPERTIES NUM probability, NUM threshold
        INFERRED FROM IMAGE source radiograph
      CONTAINS TEXT Algorithm Name / Algorithm Version
      CONTAINS TEXT Impression (one human-readable line + disclaimer)

    For an image the integrity check refused (``NotRead``) the Finding item is left out: the
    source image is referenced directly and the Impression says "NOT EVALUATED" and why.
    """
    root = hd.sr.ContainerContentItem(name=REPORT_TITLE, template_id=None)
    observer = hd.sr.ObserverContext(
        observer_type=hd.sr.CodedConcept("121007", "DCM", "Device"),
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=device_uid(finding), name=finding.model_name, manufacturer_name=MANUFACTURER, model_name=PRODUCT,
        ),
    )
    items: list[hd.sr.ContentItem] = list(observer)
    if isinstance(finding, NotRead):
        items.append(hd.sr.ImageContentItem(name=SOURCE_IMAGE, referenced_sop_class_uid=source.SOPClassUID,
                                            referenced_sop_instance_uid=source.SOPInstanceUID,
                                            relationship_type=R.CONTAINS))
        _algorithm_and_impression(items, finding)
        root.ContentSequence = hd.sr.ContentSequence(items)
        return root

    finding_item = hd.sr.CodeContentItem(name=FINDING, value=PNEUMONIA, relationship_type=R.CONTAINS)
    finding_item.ContentSequence = hd.sr.ContentSequence([
        hd.sr.CodeContentItem(name=PNEUMONIA, value=PRESENT if finding.pneumonia else ABSENT,
                              relationship_type=R.HAS_PROPERTIES),
        hd.sr.NumContentItem(name=PROBABILITY, value=round(finding.probability, 6), unit=NO_UNITS,
                             relationship_type=R.HAS_PROPERTIES),
        hd.sr.NumContentItem(name=THRESHOLD, value=round(finding.threshold, 6), unit=NO_UNITS,
                             relationship_type=R.HAS_PROPERTIES),
        hd.sr.ImageContentItem(name=SOURCE_IMAGE, referenced_sop_class_uid=source.SOPClassUID,
                               referenced_sop_instance_uid=source.SOPInstanceUID,
                               relationship_type=R.INFERRED_FROM),
    ])
    items.append(finding_item)
    _algorithm_and_impression(items, finding)
    root.ContentSequence = hd.sr.ContentSequence(items)
    return root


def _algorithm_and_impression(items: list[hd.sr.ContentItem], finding: Finding | NotRead) -> None:
    items.append(hd.sr.TextContentItem(name=ALGORITHM_NAME, value=finding.model_name, relationship_type=R.CONTAINS))
    items.append(hd.sr.TextContentItem(name=ALGORITHM_VERSION, value=finding.model_version,
                                       relationship_type=R.CONTAINS))
    items.append(hd.sr.TextContentItem(name=IMPRESSION, value=f"{finding.headline()}. {DISCLAIMER}"[:1024],
                                       relationship_type=R.CONTAINS))


def build_report(source: Dataset, finding: Finding | NotRead) -> Dataset:
    """Comprehensive SR in the source's study, referencing the source radiograph as evidence."""
    evidence = Dataset()  # header only: highdicom needs the study/series/SOP identity, not the pixels
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "PatientID",
                    "PatientName", "PatientBirthDate", "PatientSex", "StudyID", "StudyDate", "StudyTime",
                    "AccessionNumber", "ReferringPhysicianName", "IssuerOfPatientID", "PatientAge"):
        # type 2 attributes: copied when present, empty otherwise (as the standard allows)
        setattr(evidence, keyword, source.data_element(keyword).value if keyword in source else None)
    sr = hd.sr.ComprehensiveSR(
        evidence=[evidence],
        content=report_content(source, finding),
        series_instance_uid=hd.UID(),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=False,
        is_verified=False,
    )
    sr.SeriesDescription = SR_SERIES_DESCRIPTION
    return sr
