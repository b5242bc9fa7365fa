"""A small streaming ``multipart/form-data`` reader.

File uploads are the one place the emulator takes large request bodies (a 50,000-line batch
is 20-30 MB), so the file part goes straight from the socket to disk in chunks instead of
being buffered; the other parts are short form fields kept in memory (bounded). Written here
rather than pulling in ``python-multipart`` because the project does not otherwise need it and
the subset SDKs send (RFC 7578, no nested parts) is small.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import IO

__all__ = ["FilePart", "FormData", "MultipartError", "boundary_of", "read_form"]

_PARAM = re.compile(r';\s*([A-Za-z0-9_*.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')
MAX_HEADER_BYTES = 16 * 1024


class MultipartError(ValueError):
    """The body is not the multipart form it claims to be, or breaks a limit."""


@dataclass
class FilePart:
    """A part with a filename: where its bytes went and how many there were."""

    name: str
    filename: str
    content_type: str | None
    size: int = 0


@dataclass
class FormData:
    """Parsed form: text fields and file parts, by field name (last one wins)."""

    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, FilePart] = field(default_factory=dict)


def _params(header_value: str) -> dict[str, str]:
    out = {}
    for key, raw in _PARAM.findall(";" + header_value.split(";", 1)[-1]):
        value = raw.strip()
        if value.startswith('"') and value.endswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out[key.lower()] = value
    return out


def boundary_of(content_type: str) -> bytes:
    """The boundary parameter of a ``multipart/form-data`` content type."""
    if content_type.split(";", 1)[0].strip().lower() != "multipart/form-data":
        raise MultipartError("Content-Type must be multipart/form-data")
    boundary = _params(content_type).get("boundary")
    if not boundary or len(boundary) > 200:
        raise MultipartError("multipart/form-data Content-Type has no valid boundary")
    return boundary.encode("latin-1")


class _Buffer:
    """Bytes read so far from an async chunk stream, refilled on demand."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self.data = bytearray()

    async def fill(self) -> None:
        async for chunk in self._chunks:
            if chunk:
                self.data += chunk
                return
        raise MultipartError("multipart body ended early")


async def read_form(
    chunks: AsyncIterator[bytes],
    boundary: bytes,
    open_file: Callable[[FilePart], IO[bytes]],
    *,
    max_file_bytes: int,
    max_field_bytes: int = 64 * 1024,
) -> FormData:
    """Read the whole form; each file part's bytes are written to ``open_file(part)``.

    The sink is closed by this function. Raises ``MultipartError`` on malformed input or
    when a part exceeds its limit (then the caller discards what was written).
    """
    buf = _Buffer(chunks)
    delimiter = b"--" + boundary
    separator = b"\r\n" + delimiter
    form = FormData()
    while (idx := buf.data.find(delimiter)) < 0:
        del buf.data[: max(0, len(buf.data) - len(delimiter))]
        await buf.fill()
    del buf.data[: idx + len(delimiter)]
    while True:
        while len(buf.data) < 2:
            await buf.fill()
        if buf.data[:2] == b"--":
            return form
        if buf.data[:2] != b"\r\n":
            raise MultipartError("malformed multipart boundary line")
        del buf.data[:2]
        while (end := buf.data.find(b"\r\n\r\n")) < 0:
            if len(buf.data) > MAX_HEADER_BYTES:
                raise MultipartError("multipart part headers too long")
            await buf.fill()
        headers = {}
        for line in bytes(buf.data[:end]).decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        del buf.data[: end + 4]
        disposition = _params(headers.get("content-disposition", ""))
        name = disposition.get("name")
        if name is None:
            raise MultipartError("multipart part without a field name")
        if "filename" in disposition:
            part = FilePart(name, disposition["filename"], headers.get("content-type"))
            sink = open_file(part)
            with sink:
                await _copy_part(buf, separator, sink.write, part, max_file_bytes)
            form.files[name] = part
        else:
            text = bytearray()
            probe = FilePart(name, "", None)
            await _copy_part(buf, separator, text.extend, probe, max_field_bytes)
            form.fields[name] = text.decode("utf-8", "replace")


async def _copy_part(
    buf: _Buffer, separator: bytes, write: Callable[[bytes], object], part: FilePart, limit: int
) -> None:
    """Move one part's body to ``write`` up to the next boundary, keeping memory bounded."""
    keep = len(separator) - 1
    while True:
        idx = buf.data.find(separator)
        cut = idx if idx >= 0 else len(buf.data) - keep
        if cut > 0:
            part.size += cut
            if part.size > limit:
                raise MultipartError(f"form part '{part.name}' exceeds {limit} bytes")
            write(bytes(buf.data[:cut]))
            del buf.data[:cut]
        if idx >= 0:
            del buf.data[: len(separator)]
            return
        await buf.fill()
