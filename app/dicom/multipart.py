"""multipart/related bodies (RFC 2387), as DICOMweb sends and expects them.

Parsing uses python-multipart's streaming parser (the one behind form uploads), which only
needs the boundary, fed as the request arrives; encoding is a few lines of framing.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from app.core.multipart import PartHeaders, boundary_of
from app.errors import BadRequest
from models.errors import UnsupportedImageType

DICOM = "application/dicom"


@dataclass
class Part:
    """One body part: its headers (names lower-cased) and its bytes in ``body``, an in-memory buffer or,
    for STOW-RS, an open file in the results store's spool folder (``path``)."""

    headers: dict[str, str] = field(default_factory=dict)
    body: BinaryIO = field(default_factory=io.BytesIO)
    path: Path | None = None

    @property
    def media_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def data(self) -> bytes:
        """The whole part in memory (small parts and tests; STOW-RS reads headers from ``body``)."""
        self.body.seek(0)
        return self.body.read()


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


class RelatedParser:
    """Incremental multipart/related parser: ``write`` chunks as the body arrives, ``finish`` at the end.

    Each part's bytes go straight to the sink ``open_part`` makes (a spool file for STOW-RS), so a
    256 MB request never sits in memory. BadRequest (400) when the body is not well formed.
    """

    def __init__(self, boundary: bytes, open_part: Callable[[], tuple[BinaryIO, Path | None]]) -> None:
        self.parts: list[Part] = []
        self._ended = False
        current = PartHeaders()

        def on_part_begin() -> None:
            current.clear()
            body, path = open_part()
            self.parts.append(Part(headers=current.headers, body=body, path=path))

        def on_part_data(data: bytes, start: int, end: int) -> None:
            self.parts[-1].body.write(data[start:end])

        def on_end() -> None:
            self._ended = True

        self._parser = MultipartParser(boundary, {"on_part_begin": on_part_begin, **current.callbacks(),
                                                  "on_part_data": on_part_data, "on_end": on_end})

    def write(self, chunk: bytes) -> None:
        try:
            self._parser.write(chunk)
        except (FormParserError, ValueError) as exc:
            raise BadRequest(f"malformed multipart/related body: {exc}") from None

    def finish(self) -> list[Part]:
        try:
            self._parser.finalize()
        except (FormParserError, ValueError) as exc:
            raise BadRequest(f"malformed multipart/related body: {exc}") from None
        if not self.parts:
            raise BadRequest("multipart/related body has no parts (check the boundary)")
        if not self._ended:
            raise BadRequest("multipart/related body is truncated: no closing boundary")
        for part in self.parts:
            part.body.flush()
        return self.parts


def parse_related(body: bytes, boundary: bytes) -> list[Part]:
    """Split a multipart body held in memory into parts (headers lower-cased). 400 when not well formed."""
    parser = RelatedParser(boundary, lambda: (io.BytesIO(), None))
    parser.write(body)
    return parser.finish()


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
