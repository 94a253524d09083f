"""The /predict JSON body, written fast: pydantic-core serializes the prediction, the base64 images go in after."""

from __future__ import annotations

import secrets

from app.schemas import Prediction

IMAGE_FIELDS = ("heatmap", "preview")


def prediction_json(p: Prediction) -> bytes:
    """``p.model_dump_json(by_alias=True)``, byte for byte, with the base64 images put in after pydantic-core has
    serialized the rest: base64 needs no JSON escaping, so nothing scans its ~1 MB for characters to escape
    (0.05 ms instead of 0.5-1.9 for a 1024² overlay). Each image's place is held by a random marker ('@' is
    not in base64's alphabet, and no other string of the body can hold a marker it has never seen)."""
    images = {name: part for name in IMAGE_FIELDS if (part := getattr(p, name)) is not None}
    if not images:
        return p.model_dump_json(by_alias=True).encode()
    markers = {name: f"@{secrets.token_hex(16)}".encode() for name in images}
    light = p.model_copy(update={name: part.model_copy(update={"data": markers[name].decode()})
                                 for name, part in images.items()})
    out = light.model_dump_json(by_alias=True).encode()
    pieces, start = [], 0
    for name in sorted(images, key=lambda n: out.index(markers[n])):
        at = out.index(markers[name], start)
        pieces += [out[start:at], images[name].data.encode("ascii")]
        start = at + len(markers[name])
    return b"".join([*pieces, out[start:]])
