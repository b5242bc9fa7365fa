"""Reading JSONL result streams, shared by the provider adapters."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

__all__ = ["split_lines"]


def split_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Bytes chunks -> lines, split on ``\\n`` only.

    httpx's ``iter_lines`` follows ``str.splitlines`` and also breaks on U+2028, U+0085 and
    friends, which JSON allows unescaped inside strings (model output contains them), so it
    would cut valid result lines in two. Splitting bytes on ``\\n`` is exact for UTF-8 JSONL.
    """
    buffer = bytearray()
    for chunk in chunks:
        scan = len(buffer)
        buffer += chunk
        start = 0
        while (end := buffer.find(b"\n", scan)) >= 0:
            yield bytes(buffer[start:end]).rstrip(b"\r")
            start = scan = end + 1
        del buffer[:start]
    if buffer:
        yield bytes(buffer).rstrip(b"\r")
