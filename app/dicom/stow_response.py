"""The STOW-RS response (PS3.18 10.5.3): DICOM JSON with referenced and failed instances."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from pydicom.dataset import Dataset

PRIVATE_GROUP = 0x0009
PRIVATE_CREATOR = "CXR screening"


class FailureReason(IntEnum):
    """Failure Reason (0008,1197) values, PS3.4 GG.4-1 and PS3.18 10.5.3."""

    PROCESSING_FAILURE = 0x0110
    SOP_CLASS_NOT_SUPPORTED = 0x0122
    OUT_OF_RESOURCES = 0xA700
    DOES_NOT_MATCH_SOP_CLASS = 0xA900
    CANNOT_UNDERSTAND = 0xC000
    TRANSFER_SYNTAX_NOT_SUPPORTED = 0xC122


@dataclass(frozen=True)
class Accepted:
    sop_class_uid: str
    sop_instance_uid: str
    result_id: str


@dataclass(frozen=True)
class Failed:
    sop_class_uid: str
    sop_instance_uid: str
    reason: FailureReason
    detail: str  # human-readable; never patient data


def _ref(sop_class: str, sop_instance: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class or None
    item.ReferencedSOPInstanceUID = sop_instance or None
    return item


def stow_response(accepted: list[Accepted], failed: list[Failed], *, results_url: str | None = None) -> dict:
    """DICOM JSON of the response. The reason text rides in a private element (0009,1001)
    beside the standard code, so a person reading the response sees why."""
    ds = Dataset()
    if results_url:
        ds.RetrieveURL = results_url
    if accepted:
        items = []
        for a in accepted:
            item = _ref(a.sop_class_uid, a.sop_instance_uid)
            block = item.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
            block.add_new(0x02, "LO", a.result_id)
            items.append(item)
        ds.ReferencedSOPSequence = items
    if failed:
        items = []
        for f in failed:
            item = _ref(f.sop_class_uid, f.sop_instance_uid)
            item.FailureReason = int(f.reason)
            block = item.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
            block.add_new(0x01, "LT", f.detail[:1024])
            items.append(item)
        ds.FailedSOPSequence = items
    return ds.to_json_dict()


def status_code(accepted: list[Accepted], failed: list[Failed]) -> int:
    """202: queued (some may have failed); 409: none accepted; 503 when only resources were short."""
    if accepted:
        return 202
    if failed and all(f.reason is FailureReason.OUT_OF_RESOURCES for f in failed):
        return 503
    return 409
