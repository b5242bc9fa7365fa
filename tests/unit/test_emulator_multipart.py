"""The streaming multipart reader: correct at any chunking, bounded, strict on bad input."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import IO

import pytest

from llmbatch.emulator.multipart import FilePart, MultipartError, boundary_of, read_form

BOUNDARY = b"b0undary"


def body(*parts: tuple[str, str | None, bytes]) -> bytes:
    out = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += b"--" + BOUNDARY + b"\r\nContent-Disposition: " + disposition.encode()
        if filename is not None:
            out += b"\r\nContent-Type: application/octet-stream"
        out += b"\r\n\r\n" + content + b"\r\n"
    return out + b"--" + BOUNDARY + b"--\r\n"


class Sink(io.BytesIO):
    """Keeps its bytes after close, so tests can read what was written."""

    def close(self) -> None:
        self.kept = self.getvalue()
        super().close()


def parse(data: bytes, chunk: int, max_file_bytes: int = 10_000) -> tuple[dict[str, str], bytes]:
    sinks: list[Sink] = []

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(data), chunk):
            yield data[i:i + chunk]

    def open_file(part: FilePart) -> IO[bytes]:
        sinks.append(Sink())
        return sinks[-1]

    form = asyncio.run(read_form(chunks(), BOUNDARY, open_file, max_file_bytes=max_file_bytes))
    return form.fields, sinks[0].kept if sinks else b""


CONTENT = b'{"a": 1}\r\n{"b": "--b0undar"}\n' * 7


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 13, 64, 10_000])
def test_fields_and_file_survive_any_chunking(chunk: int) -> None:
    data = body(("purpose", None, b"batch"), ("file", "in.jsonl", CONTENT),
                ("expires_after[seconds]", None, b"3600"))
    fields, content = parse(data, chunk)
    assert fields == {"purpose": "batch", "expires_after[seconds]": "3600"}
    assert content == CONTENT


def test_a_preamble_before_the_first_boundary_is_ignored() -> None:
    fields, _ = parse(b"ignore me\r\n" + body(("purpose", None, b"x")), 5)
    assert fields == {"purpose": "x"}


def test_a_file_over_the_limit_is_refused() -> None:
    with pytest.raises(MultipartError, match="exceeds"):
        parse(body(("file", "f.jsonl", b"x" * 101)), 16, max_file_bytes=100)


@pytest.mark.parametrize(
    "data",
    [
        b"--" + BOUNDARY + b"\r\nContent-Disposition: form-data\r\n\r\nx\r\n--" + BOUNDARY
        + b"--",
        b"--" + BOUNDARY + b"\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated",
        b"--" + BOUNDARY + b"XX",
        b"no boundary at all",
    ],
)
def test_malformed_bodies_are_errors(data: bytes) -> None:
    with pytest.raises(MultipartError):
        parse(data, 4)


def test_the_boundary_is_read_from_the_content_type() -> None:
    assert boundary_of('multipart/form-data; boundary="abc"') == b"abc"
    assert boundary_of("multipart/form-data; charset=utf-8; boundary=xyz") == b"xyz"
    with pytest.raises(MultipartError):
        boundary_of("application/json")
    with pytest.raises(MultipartError):
        boundary_of("multipart/form-data")
