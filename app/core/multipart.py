"""Multipart framing shared by form uploads and multipart/related: the boundary, and each part's headers."""

from __future__ import annotations

from typing import Callable

from app.core.errors import BadRequest


def boundary_of(params: dict[bytes, bytes], what: str = "multipart") -> bytes:
    """The boundary from parsed Content-Type parameters; 400 without one."""
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadRequest(f"{what} body without a boundary parameter in Content-Type")
    return boundary


class PartHeaders:
    """``callbacks()`` go into a MultipartParser; ``headers`` then holds the current part's
    headers (names lower-cased, latin-1 decoded). ``clear()`` at each new part starts a new
    dict, so a part may keep the one it was given."""

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self._name = bytearray()
        self._value = bytearray()

    def clear(self) -> None:
        self.headers = {}

    def _field(self, data: bytes, start: int, end: int) -> None:
        self._name.extend(data[start:end])

    def _value_part(self, data: bytes, start: int, end: int) -> None:
        self._value.extend(data[start:end])

    def _end(self) -> None:
        self.headers[self._name.decode("latin-1").strip().lower()] = self._value.decode("latin-1").strip()
        self._name.clear()
        self._value.clear()

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {"on_header_field": self._field, "on_header_value": self._value_part, "on_header_end": self._end}
