"""What a DICOM header says about whether the classifier may read the image.

The rules, each with its reason in words (tests assert them):
- Modality must be CR or DX (computed or digital radiography);
- BodyPartExamined, when present and not empty, must name the chest: any word of
  ``CHEST_WORDS`` after upper-casing and splitting on anything that is not a letter
  (so ``CHEST``, ``Thorax``, ``CHEST_PA``, ``PORTABLE CHEST``, ``TORAX`` pass, ``KNEE`` fails);
- ViewPosition ``LL``, ``RL``, ``LAT``, ``LATERAL``, ``LLAT`` or ``RLAT`` is a lateral view: refused;
- PatientAge of 18 years or more is accepted with a warning (the model was validated on
  children only).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

MODALITIES = frozenset({"CR", "DX"})
CHEST_WORDS = frozenset({"CHEST", "THORAX", "LUNG", "LUNGS", "CXR", "TORAX", "TORACE", "THORAKS", "PECHO",
                         "POITRINE", "THORACIC"})
LATERAL_VIEWS = frozenset({"LL", "RL", "LAT", "LATERAL", "LLAT", "RLAT"})
ADULT_AGE_YEARS = 18
ADULT_WARNING = ("patient age {age} is 18 years or more: the model was validated on pediatric radiographs "
                 "(1-5 years) only")


@dataclass(frozen=True)
class HeaderVerdict:
    refusal: str | None = None  # the reason in words, None when the header allows reading
    code: str | None = None  # modality | body_part | lateral_view: a bounded label for metrics
    warnings: list[str] = field(default_factory=list)


def _text(ds: Any, keyword: str) -> str:
    value = ds.get(keyword, "") if ds is not None else ""
    return str(value or "").strip()


def modality_refusal(modality: str) -> str | None:
    """The modality rule alone (STOW-RS intake applies it before anything is stored)."""
    m = modality.strip().upper()
    if m in MODALITIES:
        return None
    return f"modality {m or 'missing'} (only CR and DX radiographs are screened)"


def age_in_years(age: str) -> float | None:
    """DICOM AS value ('005Y', '018M', '030W', '100D') -> years; None when absent or malformed."""
    match = re.fullmatch(r"\s*(\d{1,3})\s*([DWMY])\s*", age.upper())
    if not match:
        return None
    n, unit = int(match.group(1)), match.group(2)
    return n / {"D": 365.25, "W": 52.18, "M": 12.0, "Y": 1.0}[unit]


def check_header(ds: Any) -> HeaderVerdict:
    """Apply every header rule to a parsed pydicom Dataset (the first refusal wins)."""
    refusal = modality_refusal(_text(ds, "Modality"))
    if refusal:
        return HeaderVerdict(refusal, "modality")
    body = _text(ds, "BodyPartExamined")
    if body and not CHEST_WORDS.intersection(re.split(r"[^A-Z]+", body.upper())):
        return HeaderVerdict(f"body part {body.upper()[:32]} is not the chest (BodyPartExamined)", "body_part")
    view = _text(ds, "ViewPosition").upper()
    if view in LATERAL_VIEWS:
        return HeaderVerdict(f"lateral view (ViewPosition {view})", "lateral_view")
    warnings = []
    years = age_in_years(_text(ds, "PatientAge"))
    if years is not None and years >= ADULT_AGE_YEARS:
        warnings.append(ADULT_WARNING.format(age=_text(ds, "PatientAge").upper()))
    return HeaderVerdict(None, None, warnings)
