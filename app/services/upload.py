"""Read an upload with a byte limit enforced while streaming, from multipart or a raw body."""

from __future__ import annotations

from fastapi import Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import FormParser, parse_options_header

from app.errors import BadRequest, UploadTooLarge
from models.errors import UnsupportedImageType

RAW_TYPES = {"image/png", "image/jpeg", "image/jpg", "application/dicom", "application/octet-stream"}
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers on top of the file itself


async def read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise UploadTooLarge(f"upload of {int(declared)} bytes exceeds the limit of {limit} bytes")
        except ValueError:
            raise BadRequest("invalid Content-Length header") from None
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise UploadTooLarge(f"upload exceeds the limit of {limit} bytes")
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

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadRequest("multipart body without a boundary parameter in Content-Type")
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
