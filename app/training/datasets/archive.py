"""Safe extraction of uploaded dataset archives (zip, tar.gz): no path escapes, links, devices or bombs."""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from app.errors import BadRequest, UploadTooLarge
from models.errors import UnsupportedImageType


def archive_kind(head: bytes) -> str:
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "tar.gz"
    raise UnsupportedImageType("dataset upload must be a .zip or .tar.gz archive")


def _safe_name(name: str) -> PurePosixPath:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise BadRequest(f"archive entry {name!r} escapes the dataset folder (zip-slip); archive rejected")
    return p


def _copy_limited(src, dst: Path, budget: list[int]) -> None:  # type: ignore[no-untyped-def]
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(dst, "wb") as out:
        while chunk := src.read(1 << 20):
            budget[0] -= len(chunk)
            if budget[0] < 0:
                raise UploadTooLarge("archive expands beyond the uncompressed size limit (zip bomb?); archive rejected")
            out.write(chunk)


def extract(archive: Path, dest: Path, *, max_files: int, max_bytes: int) -> int:
    """Extract regular files only into ``dest``; returns the number of files. Raises before writing outside."""
    kind = archive_kind(archive.open("rb").read(4))
    budget = [max_bytes]
    count = 0
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive) as zf:
                infos = zf.infolist()
                for info in infos:
                    _safe_name(info.filename)
                    if (info.external_attr >> 16) & 0o170000 == 0o120000:
                        raise BadRequest(f"archive entry {info.filename!r} is a symbolic link; archive rejected")
                files = [i for i in infos if not i.is_dir()]
                if len(files) > max_files:
                    raise UploadTooLarge(f"archive has {len(files)} files, over the limit of {max_files}")
                if sum(i.file_size for i in files) > max_bytes:
                    raise UploadTooLarge("archive declares more uncompressed bytes than the limit (zip bomb?); archive rejected")
                for info in files:
                    with zf.open(info) as src:
                        _copy_limited(src, dest / _safe_name(info.filename), budget)
                    count += 1
        else:
            with tarfile.open(archive, "r:gz") as tf:
                members = tf.getmembers()
                for m in members:
                    _safe_name(m.name)
                    if m.issym() or m.islnk():
                        raise BadRequest(f"archive entry {m.name!r} is a link; archive rejected")
                    if not (m.isfile() or m.isdir()):
                        raise BadRequest(f"archive entry {m.name!r} is not a regular file; archive rejected")
                files = [m for m in members if m.isfile()]
                if len(files) > max_files:
                    raise UploadTooLarge(f"archive has {len(files)} files, over the limit of {max_files}")
                for m in files:
                    src = tf.extractfile(m)
                    if src is not None:
                        _copy_limited(src, dest / _safe_name(m.name), budget)
                        count += 1
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise BadRequest(f"corrupt archive: {exc}") from None
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return count
