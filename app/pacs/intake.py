"""Is this STOW-RS part a chest radiograph we can read? One verdict per instance, with a reason."""

from __future__ import annotations

from dataclasses import dataclass

from app.dicom.codes import PLACEMENT_UIDS
from app.dicom.multipart import DICOM, Part
from app.dicom.stow_response import Failed, FailureReason
from models.dicom import READ_ERRORS, read_dicom
from models.errors import InvalidImage
from models.integrity.dicom_rules import modality_refusal


@dataclass(frozen=True)
class Eligible:
    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str
    part: Part  # the instance's bytes (a spool file for STOW-RS), moved into the store when accepted


def _decodable(transfer_syntax: str) -> bool:
    """pydicom has a decoder for it (native for uncompressed, a plug-in for compressed syntaxes)."""
    from pydicom.pixels import get_decoder

    try:
        return bool(get_decoder(transfer_syntax).is_available)
    except (NotImplementedError, ValueError, KeyError):
        return False


def check_instance(part: Part, *, study_uid: str | None = None) -> Eligible | Failed:
    """Header checks only (pixels are decoded later, in the background)."""

    def fail(reason: FailureReason, detail: str, sop_class: str = "", sop_uid: str = "") -> Failed:
        return Failed(sop_class, sop_uid, reason, detail)

    if part.media_type and part.media_type != DICOM:
        return fail(FailureReason.CANNOT_UNDERSTAND, f"part has Content-Type {part.media_type!r}, not {DICOM}")
    part.body.seek(0)
    preamble = part.body.read(132)
    if len(preamble) < 132 or preamble[128:132] != b"DICM":
        return fail(FailureReason.CANNOT_UNDERSTAND, "part is not a DICOM Part-10 file (no 'DICM' preamble)")
    try:
        part.body.seek(0)
        ds = read_dicom(part.body, defer_size=4096)  # from the spool file; large values (pixels) stay unread
        sop_class = str(ds.get("SOPClassUID", "") or "")
        sop_uid = str(ds.get("SOPInstanceUID", "") or "")
        study = str(ds.get("StudyInstanceUID", "") or "")
        missing = [k for k in PLACEMENT_UIDS if not ds.get(k)]
        modality = str(ds.get("Modality", "") or "").upper()
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        ts = str(getattr(ds.file_meta, "TransferSyntaxUID", "") or "")
        has_pixels = any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))
    except InvalidImage as exc:
        return fail(FailureReason.CANNOT_UNDERSTAND, exc.detail)
    except READ_ERRORS as exc:
        return fail(FailureReason.CANNOT_UNDERSTAND, f"corrupt or truncated DICOM: {type(exc).__name__}")
    if missing:  # the same rule the result builders apply: refused here, not failed later
        return fail(FailureReason.CANNOT_UNDERSTAND, f"instance lacks {', '.join(missing)}",
                    sop_class, sop_uid)
    if study_uid is not None and study != study_uid:
        return fail(FailureReason.DOES_NOT_MATCH_SOP_CLASS,
                    "instance belongs to another study than the one in the request URL", sop_class, sop_uid)
    if (refusal := modality_refusal(modality)) is not None:
        return fail(FailureReason.SOP_CLASS_NOT_SUPPORTED, f"skipped: {refusal}", sop_class, sop_uid)
    if frames != 1:
        return fail(FailureReason.SOP_CLASS_NOT_SUPPORTED, f"skipped: {frames} frames (single-frame images only)",
                    sop_class, sop_uid)
    if not has_pixels:
        return fail(FailureReason.DOES_NOT_MATCH_SOP_CLASS, "instance has no pixel data", sop_class, sop_uid)
    if not _decodable(ts):
        return fail(FailureReason.TRANSFER_SYNTAX_NOT_SUPPORTED,
                    f"transfer syntax {ts or 'missing'} cannot be decoded here", sop_class, sop_uid)
    return Eligible(sop_class, sop_uid, study, part)
