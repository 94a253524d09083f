"""The integrity stage: decoded image -> accepted or refused, with a score, a reason and warnings.

Header rules (DICOM only) are applied first; the pixel guard scores every image, so even a
header-refused image reports what its pixels look like.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from models.imaging import DecodedImage
from models.integrity.dicom_rules import check_header
from models.integrity.guard import LoadedGuard

CONTENT_REASON = "the image does not look like a frontal chest radiograph (integrity {score:.2f} < {threshold:.2f})"


@dataclass(frozen=True)
class IntegrityResult:
    accepted: bool
    score: float
    threshold: float
    reason: str | None = None
    code: str = "accepted"  # accepted | modality | body_part | lateral_view | not_frontal_chest (for metrics)
    warnings: list[str] = field(default_factory=list)


def check_image(decoded: DecodedImage, guard: LoadedGuard) -> IntegrityResult:
    score = guard.score(decoded.pixels)
    threshold = guard.card.threshold
    warnings: list[str] = []
    if decoded.dataset is not None:
        verdict = check_header(decoded.dataset)
        warnings = list(verdict.warnings)
        if verdict.refusal:
            return IntegrityResult(False, score, threshold, verdict.refusal, verdict.code or "header", warnings)
    if score < threshold:
        return IntegrityResult(False, score, threshold, CONTENT_REASON.format(score=score, threshold=threshold),
                               "not_frontal_chest", warnings)
    return IntegrityResult(True, score, threshold, None, "accepted", warnings)
