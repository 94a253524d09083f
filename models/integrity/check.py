"""The integrity stage: decoded image -> accepted or refused, with a score, a reason and warnings.

Header rules (DICOM only) come first; the pixel guard scores every image, so a header-refused
image still reports what its pixels look like. ``judge`` is the one place the two are combined:
``check_image`` runs both in a row, and the service runs the guard beside the classifier and
then calls ``judge`` with the same inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from models.errors import CXRError
from models.imaging import DecodedImage, decode_image
from models.integrity.dicom_rules import HeaderVerdict, check_header
from models.integrity.guard_card import GuardScorer

CONTENT_REASON = "the image does not look like a frontal chest radiograph (integrity {score:.2f} < {threshold:.2f})"


@dataclass(frozen=True)
class IntegrityResult:
    accepted: bool
    score: float
    threshold: float
    reason: str | None = None
    code: str = "accepted"  # accepted | modality | body_part | lateral_view | not_frontal_chest (for metrics)
    warnings: list[str] = field(default_factory=list)


def header_verdict(decoded: DecodedImage) -> HeaderVerdict:
    """The DICOM header rules for DICOM input; PNG and JPEG carry no header (nothing to refuse)."""
    return HeaderVerdict() if decoded.dataset is None else check_header(decoded.dataset)


def judge(header: HeaderVerdict, score: float, threshold: float) -> IntegrityResult:
    warnings = list(header.warnings)
    if header.refusal:
        return IntegrityResult(False, score, threshold, header.refusal, header.code or "header", warnings)
    if score < threshold:
        return IntegrityResult(False, score, threshold, CONTENT_REASON.format(score=score, threshold=threshold),
                               "not_frontal_chest", warnings)
    return IntegrityResult(True, score, threshold, None, "accepted", warnings)


def check_image(decoded: DecodedImage, guard: GuardScorer) -> IntegrityResult:
    return judge(header_verdict(decoded), guard.score(decoded.pixels), guard.card.threshold)


def check_version_images(paths: list[Path], guard: GuardScorer) -> dict[str, object]:
    """Run the integrity check over a new version's own validation images (what a site fine-tunes
    on is what it will send): the share accepted, recorded in that version's card."""
    accepted, refused, unreadable = 0, [], 0
    for path in paths:
        try:
            result = check_image(decode_image(path.read_bytes()), guard)
        except (CXRError, OSError):
            unreadable += 1
            continue
        if result.accepted:
            accepted += 1
        else:
            refused.append(path.name)
    checked = accepted + len(refused)
    return {"guard": guard.card.name, "guard_version": guard.card.version, "guard_sha256": guard.card.sha256,
            "images": "this version's validation images", "n": checked,
            "accepted": round(accepted / checked, 4) if checked else None, "refused_files": refused[:20]}


def screener(guard_dir: Path | None) -> Callable[[DecodedImage], str | None] | None:
    """What `cxr evaluate` and site calibration pass to ``load_tensors(screen=...)``: decoded image ->
    the reason the service would refuse it, or None. ``guard_dir`` None: no check."""
    if guard_dir is None:
        return None
    from models.integrity.guard import load_guard  # eager: the offline tools have torch loaded anyway

    guard = load_guard(Path(guard_dir))
    return lambda decoded: check_image(decoded, guard).reason
