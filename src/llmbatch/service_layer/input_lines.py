"""The lines of an input file, read in blocks, and its content hash on the way.

``readline`` a line at a time, then hashing each line, cost about as much per line as the
typed read of a plain chat line (issue 13). Here the file is read a block at a time, split in
C (``bytes.split``, on ``\\n`` only, as ``readline`` splits), and a block's whole lines go
into the hash in one ``update``.

A line is given without its ``\\n`` and trailing ``\\r`` (JSON whitespace either way), so a
refusal's column is the same whatever ends the line. The hash reads each line as ended by one
``\\n``: a file's hash does not depend on its line endings. A line longer than
``MAX_LINE_BYTES`` is given as ``None``, its bytes dropped as they come, so a huge line never
sits in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import BinaryIO, Final, Protocol

from llmbatch.domain.input_limits import MAX_LINE_BYTES

__all__ = ["BLOCK_BYTES", "input_lines"]

BLOCK_BYTES: Final = 1024 * 1024


class Digest(Protocol):
    """What ``hashlib``'s hashes offer and the lines are fed to."""

    def update(self, data: bytes, /) -> None: ...


def input_lines(handle: BinaryIO, digest: Digest, *, block_bytes: int = BLOCK_BYTES,
                max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[bytes | None]:
    """The lines of ``handle``, each added to ``digest``; ``None`` for a line longer than
    ``max_line_bytes`` (not added: the file is refused). The limit is at least a block: a line
    that starts and ends within one block is within it."""
    if max_line_bytes < block_bytes:
        raise ValueError("max_line_bytes must be at least block_bytes")
    update = digest.update
    pending: list[bytes] = []  # the start of a line that crosses blocks
    pending_bytes = 0
    too_long = False  # inside a line already over the limit: its bytes are dropped
    while block := handle.read(block_bytes):
        last_end = block.rfind(b"\n")
        if last_end < 0:
            if not too_long:
                pending.append(block)
                pending_bytes += len(block)
                too_long = pending_bytes > max_line_bytes
                if too_long:
                    pending.clear()
            continue
        first_end = block.find(b"\n")
        first = block[:first_end]
        if pending:
            pending.append(first)
            first = b"".join(pending)
            pending.clear()
        if too_long or len(first) > max_line_bytes:
            too_long = False
            yield None
        else:
            yield _hashed(update, first)
        if first_end < last_end:  # whole lines, each shorter than a block
            whole = block[first_end + 1:last_end + 1]
            lines = whole.split(b"\n")
            lines.pop()  # the empty piece after the last "\n"
            if whole.find(b"\r") >= 0:
                lines = [line.rstrip(b"\r") for line in lines]
                whole = b"\n".join(lines) + b"\n"
            update(whole)
            yield from lines
        if rest := block[last_end + 1:]:
            pending.append(rest)
        pending_bytes = len(rest)
    if too_long:
        yield None
    elif pending:
        last = b"".join(pending)
        if len(last) > max_line_bytes:
            yield None
        else:
            yield _hashed(update, last)


def _hashed(update: Callable[[bytes], None], line: bytes) -> bytes:
    """``line`` without its trailing ``\\r``, once added to the hash ended by one ``\\n``
    (without a copy of a line that may be as long as the limit)."""
    line = line.rstrip(b"\r")
    update(line)
    update(b"\n")
    return line
