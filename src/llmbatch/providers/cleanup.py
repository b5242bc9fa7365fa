"""Deleting provider-side files, shared by the adapters that upload or receive files.

Two situations, one rule each: after results are stored (``delete_files``) every file is tried
and one already gone is fine; after a failed create the uploaded input is an orphan
(``delete_orphan``), deleted on a best-effort basis because the create's own error is what
the caller must see.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import structlog

from llmbatch.errors import ProviderError, ResourceGoneError

__all__ = ["delete_files", "delete_orphan"]

log = structlog.get_logger(__name__)


def delete_files(names: Iterable[str | None], delete: Callable[[str], None]) -> None:
    """``delete`` each named file (``None`` entries are skipped). A file already gone counts as
    deleted; the first other failure is raised once every file has been tried."""
    first: ProviderError | None = None
    for name in names:
        if not name:
            continue
        try:
            delete(name)
        except ResourceGoneError:
            continue
        except ProviderError as exc:
            first = first or exc
    if first is not None:
        raise first


def delete_orphan(name: str, delete: Callable[[str], None], *, provider: str) -> None:
    """Delete an uploaded file whose batch was never created; a failure is only logged (the
    provider expires files on its own)."""
    try:
        delete(name)
    except ProviderError as exc:
        log.warning("llmbatch.provider.orphan_file", provider=provider, file=name,
                    error=str(exc))
