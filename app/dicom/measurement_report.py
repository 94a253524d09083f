"""The finding as an IHE AI Results SR: TID 1500 Measurement Report in a Comprehensive 3D SR.

Built with highdicom's TID 1500 classes::

    CONTAINER Imaging Measurement Report (TID 1500)
      language, observation context: observer = device (the model; TID 1004)
      procedure reported: Plain chest X-ray
      image library: the source radiograph
      CONTAINER Imaging Measurements
        CONTAINER Measurement Group (TID 1501, image level)
          tracking identifier + UID, finding type Pneumonia, algorithm (TID 4019: name, version, parameters)
          source image for the group: the radiograph
          NUM  calibrated probability of pneumonia, NUM threshold [, NUM urgent threshold]
          CODE Pneumonia = Present | Absent
          CODE Worklist priority = Urgent | Routine

An image the integrity check refused gets the same report without numbers or a Pneumonia evaluation:
priority Not evaluated and a TEXT item saying why.
"""

from __future__ import annotations

import highdicom as hd
from pydicom.dataset import Dataset

from app.dicom.codes import (
    ABSENT,
    CHEST_RADIOGRAPH,
    MANUFACTURER,
    NO_UNITS,
    NOT_EVALUATED_REASON,
    PNEUMONIA,
    PRESENT,
    PRIORITY,
    PRIORITY_VALUES,
    PROBABILITY,
    PRODUCT,
    SR_SERIES_DESCRIPTION,
    SR_SERIES_NUMBER,
    THRESHOLD,
    TRACKING_LABEL,
    URGENT_THRESHOLD,
    Finding,
    declare_private_scheme,
    NotRead,
)
from app.dicom.equipment import contributing_equipment, device_uid
from app.dicom.header import with_type2

DEVICE = hd.sr.CodedConcept("121007", "DCM", "Device")


def _algorithm(finding: Finding | NotRead) -> hd.sr.AlgorithmIdentification:
    parameters = None
    if isinstance(finding, Finding):
        parameters = [f"threshold={finding.threshold:.6f}"]
        if finding.urgent_threshold is not None:
            parameters.append(f"urgent_threshold={finding.urgent_threshold:.6f}")
    return hd.sr.AlgorithmIdentification(name=finding.model_name, version=finding.model_version,
                                         parameters=parameters, manufacturer=MANUFACTURER)


def _number(name, value: float, algorithm: hd.sr.AlgorithmIdentification) -> hd.sr.Measurement:
    return hd.sr.Measurement(name=name, value=round(float(value), 6), unit=NO_UNITS, algorithm_id=algorithm)


def measurement_report(source: Dataset, finding: Finding | NotRead) -> hd.sr.MeasurementReport:
    observer = hd.sr.ObserverContext(
        observer_type=DEVICE,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=device_uid(finding.model_name, finding.model_version), name=finding.model_name,
            manufacturer_name=MANUFACTURER, model_name=PRODUCT,
        ),
    )
    algorithm = _algorithm(finding)
    evaluations = [hd.sr.QualitativeEvaluation(PRIORITY, PRIORITY_VALUES[finding.priority])]
    measurements = None
    if isinstance(finding, Finding):
        evaluations.insert(0, hd.sr.QualitativeEvaluation(PNEUMONIA, PRESENT if finding.pneumonia else ABSENT))
        measurements = [_number(PROBABILITY, finding.probability, algorithm),
                        _number(THRESHOLD, finding.threshold, algorithm)]
        if finding.urgent_threshold is not None:
            measurements.append(_number(URGENT_THRESHOLD, finding.urgent_threshold, algorithm))
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=TRACKING_LABEL),
        finding_type=PNEUMONIA,
        algorithm_id=algorithm,
        measurements=measurements,
        qualitative_evaluations=evaluations,
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(source)],
    )
    if isinstance(finding, NotRead):  # TID 1501 allows TEXT qualitative evaluations; highdicom builds CODE only
        group[0].ContentSequence.append(hd.sr.TextContentItem(
            name=NOT_EVALUATED_REASON, value=finding.reason[:1024],
            relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))
    return hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=CHEST_RADIOGRAPH,
        imaging_measurements=[group],
        referenced_images=[source] if _describable(source) else None,
    )


def _describable(source: Dataset) -> bool:
    """The image library entry (TID 1601/1603) describes a projection radiograph by its patient
    orientation and imager pixel spacing; without both it is left out (it is optional; the
    measurement group and the evidence sequence still reference the image)."""
    orientation, spacing = source.get("PatientOrientation"), source.get("ImagerPixelSpacing")
    try:
        return len(orientation) == 2 and len(spacing) == 2  # type: ignore[arg-type]
    except TypeError:
        return False


def build_report(source: Dataset, finding: Finding | NotRead) -> Dataset:
    """Comprehensive 3D SR in the source's study (new series), the source radiograph as evidence."""
    evidence = with_type2(source)
    sr = hd.sr.Comprehensive3DSR(
        evidence=[evidence],
        content=measurement_report(evidence, finding),
        series_instance_uid=hd.UID(),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=False,
        is_verified=False,
        contributing_equipment=contributing_equipment(finding.model_name, finding.model_version),
    )
    sr.SeriesDescription = SR_SERIES_DESCRIPTION
    declare_private_scheme(sr)
    return sr
