"""Who made a result instance: the model as a device, named the same way in every object.

The device UID is the same for every object one model name + version writes (a PACS or viewer can
group results by algorithm) and different for another version: a 2.25 UID from a name-based UUID
(RFC 4122 version 5; PS3.5 B.2). The Contributing Equipment Sequence (purpose "Processing
Algorithm") carries it on the SC, the SR and the Parametric Map alike.
"""

from __future__ import annotations

import datetime as dt
import uuid

import highdicom as hd

from app.dicom.codes import MANUFACTURER, PROCESSING_ALGORITHM, PRODUCT


def device_uid(model_name: str, model_version: str) -> str:
    name = f"{PRODUCT}/{model_name}/{model_version}"
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_URL, name).int}"


def software_version(model_name: str, model_version: str) -> str:
    return f"{model_name} {model_version}"[:64]  # LO


def contributing_equipment(model_name: str, model_version: str) -> list[hd.ContributingEquipment]:
    item = hd.ContributingEquipment(
        manufacturer=MANUFACTURER,
        purpose_of_reference=PROCESSING_ALGORITHM,
        manufacturer_model_name=PRODUCT,
        software_versions=software_version(model_name, model_version),
        device_serial_number=device_uid(model_name, model_version)[:64],
        contribution_datetime=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
        contribution_description=f"AI pneumonia screening by {model_name} {model_version}"[:64],
    )
    # Device UID (0018,1002) is in the Contributing Equipment item (PS3.3 C.12.1.1.5) but not in
    # highdicom's constructor
    item.DeviceUID = device_uid(model_name, model_version)
    return [item]
