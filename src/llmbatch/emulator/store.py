"""Where the emulator keeps bytes, and how it names things.

File bytes (uploads, generated results) live on disk in a directory the emulator owns, never
in memory: a 50,000-line input is streamed in, validated by streaming over it, and streamed
back out. Provider modules keep their small records (file and batch metadata) in their own
state objects; what they share is this blob store and the id factory.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import secrets
import shutil
import tempfile
import threading
import weakref
from pathlib import Path

__all__ = ["BlobStore", "IdFactory"]

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class BlobStore:
    """Named byte blobs in one directory.

    With ``root=None`` the directory is a fresh temp dir that ``close()`` (or garbage
    collection, or interpreter exit) removes; a given ``root`` is created if needed and left
    in place, only its blobs are removed by ``clear()``.
    """

    def __init__(self, root: Path | None = None) -> None:
        self._finalizer: weakref.finalize[[Path, bool], BlobStore] | None = None
        if root is None:
            self.root = Path(tempfile.mkdtemp(prefix="llmbatch-emulator-"))
            self._finalizer = weakref.finalize(self, shutil.rmtree, self.root, True)
        else:
            self.root = Path(root)
            self.root.mkdir(parents=True, exist_ok=True)

    def path(self, blob_id: str) -> Path:
        """Path of a blob (whether or not it exists yet)."""
        return self.root / _SAFE.sub("_", blob_id)

    def exists(self, blob_id: str) -> bool:
        """Whether the blob has been written."""
        return self.path(blob_id).exists()

    def size(self, blob_id: str) -> int:
        """Size in bytes."""
        return self.path(blob_id).stat().st_size

    def link(self, src_id: str, dst_id: str) -> None:
        """Give ``src``'s bytes a second name without copying.

        A batch links its input file so that a user deleting the file mid-run (which the real
        service allows) does not pull the bytes from under result generation.
        """
        src, dst = self.path(src_id), self.path(dst_id)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)

    def delete(self, blob_id: str) -> None:
        """Remove a blob; missing is fine (deletes race with resets)."""
        self.path(blob_id).unlink(missing_ok=True)

    def clear(self) -> None:
        """Remove every blob, keep the directory."""
        for entry in self.root.iterdir():
            if entry.is_file():
                entry.unlink(missing_ok=True)

    def close(self) -> None:
        """Remove the directory if this store created it."""
        if self._finalizer is not None:
            self._finalizer()


class IdFactory:
    """Provider-style ids (``file-…``, ``batch_…``) that are unique, across restarts too.

    Ids hash the seed, a run nonce and a counter. By default the nonce is random per
    emulator start, so a restarted emulator never hands out an id an earlier run issued (a
    client holding an old batch id gets 404, not someone else's batch). ``reproducible=True``
    (settings ``reproducible_ids``) drops the nonce: two emulators started with the same seed
    then hand out the same ids in the same order, for comparable logs and snapshots.
    """

    def __init__(self, seed: int = 0, *, reproducible: bool = False) -> None:
        self._seed = seed
        self._nonce = "" if reproducible else secrets.token_hex(8)
        self._counter = itertools.count()
        self._lock = threading.Lock()

    def new(self, prefix: str, *, length: int = 24, alphabet: str = "base62") -> str:
        """``prefix`` followed by ``length`` characters of ``hex`` or ``base62``."""
        with self._lock:
            n = next(self._counter)
        digest = hashlib.sha256(f"{self._seed}:{self._nonce}:{prefix}:{n}".encode()).digest()
        if alphabet == "hex":
            return prefix + digest.hex()[:length]
        value = int.from_bytes(digest, "big")
        chars = []
        for _ in range(length):
            value, rem = divmod(value, 62)
            chars.append(_BASE62[rem])
        return prefix + "".join(chars)
