"""multipart/related bodies (RFC 2387), as DICOMweb sends and expects them.

Parsing uses python-multipart's streaming parser (the one behind form uploads), which only
needs the boundary; encoding is a few lines of framing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from app.core.multipart import PartHeaders, boundary_of
from app.errors import BadRequest
from models.errors import UnsupportedImageType

DICOM = "application/dicom"


@dataclass
class Part:
    headers: dict[str, str] = field(default_factory=dict)
    data: bytearray = field(default_factory=bytearray)

    @property
    def media_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


def check_related(content_type: str, expected: str = DICOM) -> bytes:
    """The boundary of a ``multipart/related; type=<expected>`` Content-Type; 415 / 400 otherwise."""
    media, params = parse_options_header(content_type)
    if media.decode("latin-1").lower() != "multipart/related":
        raise UnsupportedImageType(
            f"unsupported Content-Type {media.decode('latin-1')!r}: STOW-RS takes "
            f'multipart/related; type="{expected}" with one DICOM instance per part')
    declared = params.get(b"type", b"").decode("latin-1").lower()
    if declared and declared != expected:
        raise UnsupportedImageType(f"multipart/related of type {declared!r} is not supported; use type=\"{expected}\"")
    return boundary_of(params, "multipart/related")


def parse_related(body: bytes, boundary: bytes) -> list[Part]:
    """Split a multipart body into parts (headers lower-cased). 400 when it is not well formed."""
    parts: list[Part] = []
    current = PartHeaders()

    def on_part_begin() -> None:
        current.clear()
        parts.append(Part(headers=current.headers))

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1].data.extend(data[start:end])

    ended = [False]
    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, **current.callbacks(), "on_part_data": on_part_data,
        "on_end": lambda: ended.__setitem__(0, True),
    })
    try:
        parser.write(body)
        parser.finalize()
    except (FormParserError, ValueError) as exc:
        raise BadRequest(f"malformed multipart/related body: {exc}") from None
    if not parts:
        raise BadRequest("multipart/related body has no parts (check the boundary)")
    if not ended[0]:
        raise BadRequest("multipart/related body is truncated: no closing boundary")
    return parts


def encode_related(payloads: list[bytes], media_type: str = DICOM) -> tuple[bytes, str]:
    """Frame payloads as multipart/related; returns (body, Content-Type header value)."""
    boundary = uuid.uuid4().hex
    out = bytearray()
    for payload in payloads:
        out += f"--{boundary}\r\nContent-Type: {media_type}\r\n\r\n".encode("ascii")
        out += payload
        out += b"\r\n"
    out += f"--{boundary}--\r\n".encode("ascii")
    return bytes(out), f'multipart/related; type="{media_type}"; boundary={boundary}'
