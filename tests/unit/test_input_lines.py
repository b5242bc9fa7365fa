"""``input_lines`` gives what reading a line at a time gave: the same lines (without their
ending), ``None`` for the same too-long ones, and the same content hash, whatever the blocks'
size."""

from __future__ import annotations

import hashlib
import io
import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st

from llmbatch.service_layer.input_lines import input_lines


def by_readline(data: bytes, limit: int) -> tuple[list[bytes | None], str]:
    """The reference: ``readline`` bounded by the limit, each line hashed as it is read."""
    handle, digest, lines = io.BytesIO(data), hashlib.sha256(), []
    while raw := handle.readline(limit + 1):
        if len(raw) > limit and not raw.endswith(b"\n"):
            while (rest := handle.readline(limit + 1)) and not rest.endswith(b"\n"):
                pass
            lines.append(None)
            continue
        digest.update(raw.rstrip(b"\r\n") + b"\n")
        lines.append(raw.removesuffix(b"\n").rstrip(b"\r"))
    return lines, digest.hexdigest()


def by_blocks(data: bytes, limit: int, block: int) -> tuple[list[bytes | None], str]:
    digest = hashlib.sha256()
    lines = list(input_lines(io.BytesIO(data), digest, block_bytes=block, max_line_bytes=limit))
    return lines, digest.hexdigest()


@settings(max_examples=400, deadline=None)
@given(pieces=st.lists(st.sampled_from([b"a", b"bc", b"\n", b"\r", b"\r\n", b"{}", b"xyz12"]),
                       max_size=40),
       block=st.integers(1, 9), over_block=st.integers(0, 6))
def test_blocks_give_what_readline_gave(pieces: list[bytes], block: int,
                                        over_block: int) -> None:
    data, limit = b"".join(pieces), block + over_block  # the limit is at least a block
    assert by_blocks(data, limit, block) == by_readline(data, limit)


def test_a_line_over_the_limit_is_none_and_never_held_whole() -> None:
    """A 10 MB line under a 1 MB limit: the reader holds at most about the limit at a time."""
    data = b'{"a": 1}\n' + b"x" * (10 * 1024 * 1024) + b'\n{"b": 2}'
    digest = hashlib.sha256()
    tracemalloc.start()
    try:
        lines = list(input_lines(io.BytesIO(data), digest, block_bytes=64 * 1024,
                                 max_line_bytes=1024 * 1024))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert lines == [b'{"a": 1}', None, b'{"b": 2}']
    assert peak < 2 * 1024 * 1024  # the line whole would be 10 MB
    assert digest.hexdigest() == hashlib.sha256(b'{"a": 1}\n{"b": 2}\n').hexdigest()


def test_line_endings_do_not_change_the_hash() -> None:
    unix, windows = hashlib.sha256(), hashlib.sha256()
    list(input_lines(io.BytesIO(b"a\nb\n"), unix))
    list(input_lines(io.BytesIO(b"a\r\nb"), windows))
    assert unix.hexdigest() == windows.hexdigest()
