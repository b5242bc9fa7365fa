"""Request bodies of ``POST /v1/jobs`` streamed to a temporary JSONL file.

A 200 MB upload never sits in memory: the body is read as it arrives, a chunk at a time, and
each chunk goes to disk (multipart through python-multipart's streaming parser, the same one
Starlette uses for forms). Bytes beyond ``max_bytes`` stop the read with a 413. The services
then take the file as the CLI's ``submit`` does.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from python_multipart.multipart import MultipartParser, parse_options_header

from llmbatch.api.problems import ApiProblem

__all__ = ["Upload", "receive_json", "receive_multipart"]

MAX_FIELD_BYTES = 1 << 20


@dataclass
class Upload:
    """The JSONL on disk, the name the client gave it, and the other form fields."""

    path: Path
    filename: str
    fields: dict[str, str] = field(default_factory=dict)


async def _limited(stream: AsyncIterator[bytes], max_bytes: int) -> AsyncIterator[bytes]:
    seen = 0
    async for chunk in stream:
        seen += len(chunk)
        if seen > max_bytes:
            raise ApiProblem(413, f"the request body is over the {max_bytes}-byte cap "
                                  "(api.max_body_bytes)")
        yield chunk


def _temp_jsonl(tmp_dir: Path | None) -> tuple[Path, IO[bytes]]:
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed by the caller
        prefix="llmbatch-upload-", suffix=".jsonl", dir=tmp_dir, delete=False)
    return Path(handle.name), handle


async def receive_multipart(stream: AsyncIterator[bytes], content_type: str, *,
                            max_bytes: int, tmp_dir: Path | None = None) -> Upload:
    """Parse a multipart/form-data body: the part named ``file`` goes to a temporary file,
    the other parts (small text fields) are kept. The caller deletes ``Upload.path``."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise ApiProblem(400, "multipart/form-data without a boundary")
    path, out = _temp_jsonl(tmp_dir)
    upload = Upload(path=path, filename="upload.jsonl")
    state: dict[str, Any] = {"header": b"", "value": b"", "headers": {}, "name": None,
                             "is_file": False, "buf": bytearray(), "files": 0}

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["header"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["header"].lower()] = state["value"]
        state["header"], state["value"] = b"", b""

    def on_headers_finished() -> None:
        _, disp = parse_options_header(state["headers"].get(b"content-disposition", b""))
        name = disp.get(b"name", b"").decode("utf-8", "replace")
        state["name"] = name
        state["is_file"] = name == "file"
        if state["is_file"]:
            state["files"] += 1
            # Only ever shown in messages (never a path on this side), so as the client
            # named it: its errors read like the CLI's on the client's own file.
            if disp.get(b"filename"):
                upload.filename = disp[b"filename"].decode("utf-8", "replace")[:500]

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["is_file"]:
            if state["files"] == 1:
                out.write(data[start:end])
            return
        state["buf"] += data[start:end]
        if len(state["buf"]) > MAX_FIELD_BYTES:
            raise ApiProblem(413, f"form field {state['name']!r} is over {MAX_FIELD_BYTES} bytes")

    def on_part_end() -> None:
        if not state["is_file"] and state["name"]:
            upload.fields[state["name"]] = bytes(state["buf"]).decode("utf-8", "replace")
        state["buf"] = bytearray()
        state["headers"] = {}
        state["is_file"] = False

    parser = MultipartParser(boundary, {
        "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished,
        "on_part_data": on_part_data, "on_part_end": on_part_end})
    try:
        with out:
            async for chunk in _limited(stream, max_bytes):
                parser.write(chunk)
            parser.finalize()
    except ApiProblem:
        path.unlink(missing_ok=True)
        raise
    except Exception as exc:  # python-multipart's parse errors: a malformed body
        path.unlink(missing_ok=True)
        raise ApiProblem(400, f"malformed multipart body: {exc}") from exc
    if state["files"] != 1:
        path.unlink(missing_ok=True)
        raise ApiProblem(422, "the form needs exactly one part named 'file' (the JSONL)")
    return upload


async def receive_json(stream: AsyncIterator[bytes], *, max_bytes: int) -> Any:
    """The JSON document of the body (bounded by ``max_bytes``: meant for small jobs)."""
    chunks = [chunk async for chunk in _limited(stream, max_bytes)]
    try:
        return json.loads(b"".join(chunks))
    except ValueError as exc:
        raise ApiProblem(400, f"the body is not valid JSON: {exc}") from exc


def write_jsonl(lines: list[dict[str, Any]], tmp_dir: Path | None = None) -> Path:
    """Request lines of a JSON body as a temporary JSONL file (the services read files)."""
    path, out = _temp_jsonl(tmp_dir)
    with out:
        for line in lines:
            out.write(json.dumps(line, ensure_ascii=False).encode("utf-8") + b"\n")
    return path
