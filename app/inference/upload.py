"""Read an upload with a byte limit enforced while streaming, from multipart or a raw body."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import FormParser, MultipartParser, parse_options_header

from app.core.multipart import PartHeaders, boundary_of
from app.errors import BadRequest, UploadTooLarge
from models.errors import UnsupportedImageType

RAW_TYPES = {"image/png", "image/jpeg", "image/jpg", "application/dicom", "application/octet-stream"}
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers on top of the file itself


async def stream_limited(request: Request, limit: int, sink: Callable[[bytes], object]) -> int:
    """Hand the body to ``sink`` chunk by chunk; 413 as soon as it passes ``limit`` (or says it will)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise UploadTooLarge(f"upload of {int(declared)} bytes exceeds the limit of {limit} bytes")
        except ValueError:
            raise BadRequest("invalid Content-Length header") from None
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise UploadTooLarge(f"upload exceeds the limit of {limit} bytes")
        sink(chunk)
    return received


async def read_limited(request: Request, limit: int) -> bytes:
    buf = bytearray()
    await stream_limited(request, limit, buf.extend)
    return bytes(buf)


def _file_from_multipart(body: bytes, content_type: str, field: str) -> bytes:
    found: dict[str, bytes] = {}

    def on_file(file: object) -> None:
        name = (getattr(file, "field_name", b"") or b"").decode("latin-1")
        obj = file.file_object  # type: ignore[attr-defined]
        obj.seek(0)
        found.setdefault(name, obj.read())

    def on_field(f: object) -> None:
        name = (getattr(f, "field_name", b"") or b"").decode("latin-1")
        value = getattr(f, "value", b"") or b""
        found.setdefault(name, value)

    boundary = boundary_of(parse_options_header(content_type)[1])
    try:
        parser = FormParser("multipart/form-data", on_field, on_file, boundary=boundary,
                            config={"MAX_MEMORY_FILE_SIZE": len(body) + 1, "MAX_BODY_SIZE": len(body) + 1})
        parser.write(body)
        parser.finalize()
    except (FormParserError, ValueError) as exc:
        raise BadRequest(f"malformed multipart body: {exc}") from None
    if field not in found:
        raise BadRequest(f"multipart body has no '{field}' field; send the image as -F {field}=@image.png")
    return found[field]


async def read_image_upload(request: Request, limit: int, field: str = "file") -> bytes:
    """The uploaded file's bytes: multipart field ``file``, or the raw body of an image/DICOM content type."""
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";")[0].strip().lower()
    if media == "multipart/form-data":
        body = await read_limited(request, limit + MULTIPART_OVERHEAD)
        data = _file_from_multipart(body, content_type, field)
        if len(data) > limit:
            raise UploadTooLarge(f"upload exceeds the limit of {limit} bytes")
    elif media in RAW_TYPES or media == "":
        data = await read_limited(request, limit)
    else:
        raise UnsupportedImageType(
            f"unsupported Content-Type {media!r}: send multipart/form-data with a 'file' field, "
            "or a raw body as image/png, image/jpeg or application/dicom"
        )
    if not data:
        raise BadRequest("empty upload: no image bytes received")
    return data


async def stream_to_file(request: Request, dest: Path, limit: int, field: str = "file") -> str | None:
    """Stream an upload (multipart field ``field`` or the raw body) to ``dest`` without holding it in memory.

    Returns the client's file name when multipart gave one. 413 as soon as ``limit`` is passed.
    """
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";")[0].strip().lower()
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + MULTIPART_OVERHEAD:
        raise UploadTooLarge(f"upload of {declared} bytes exceeds the limit of {limit} bytes")
    written = 0
    filename: list[str | None] = [None]
    with open(dest, "wb") as out:
        if media == "multipart/form-data":
            boundary = boundary_of(parse_options_header(content_type)[1])
            state = {"name": None, "in_file": False, "found": False}

            current = PartHeaders()

            def on_part_begin() -> None:
                state.update(name=None, in_file=False)
                current.clear()

            def on_headers_finished() -> None:
                _, disp = parse_options_header(current.headers.get("content-disposition", ""))
                name = disp.get(b"name", b"").decode("latin-1")
                state["in_file"] = name == field and not state["found"]
                if state["in_file"]:
                    state["found"] = True
                    fn = disp.get(b"filename")
                    filename[0] = fn.decode("latin-1") if fn else None

            def on_part_data(data: bytes, start: int, end: int) -> None:
                nonlocal written
                if state["in_file"]:
                    written += end - start
                    if written > limit:
                        raise UploadTooLarge(f"upload exceeds the limit of {limit} bytes")
                    out.write(data[start:end])

            parser = MultipartParser(boundary, {
                "on_part_begin": on_part_begin, **current.callbacks(), "on_headers_finished": on_headers_finished,
                "on_part_data": on_part_data,
            })
            try:
                async for chunk in request.stream():
                    parser.write(chunk)
                parser.finalize()
            except (FormParserError, ValueError) as exc:
                raise BadRequest(f"malformed multipart body: {exc}") from None
            if not state["found"]:
                raise BadRequest(f"multipart body has no '{field}' field; send the archive as -F {field}=@dataset.zip")
        else:
            async for chunk in request.stream():
                written += len(chunk)
                if written > limit:
                    raise UploadTooLarge(f"upload exceeds the limit of {limit} bytes")
                out.write(chunk)
    if written == 0:
        raise BadRequest("empty upload")
    return filename[0]
