"""Deleting provider-side files, shared by the adapters that upload or receive files.

Two situations, one rule each: after results are stored (``delete_each``) every object is
tried, one already gone is fine, and each outcome is reported (the service records them on the
job's timeline and retries failures a bounded number of times); after a failed create the
uploaded input is an orphan (``delete_orphan``), deleted on a best-effort basis because the
create's own error is what the caller must see.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import structlog

from llmbatch.domain.retention import Deletion, DeletionOutcome
from llmbatch.errors import ProviderError, ResourceGoneError

__all__ = ["delete_each", "delete_orphan"]

log = structlog.get_logger(__name__)


def delete_each(objects: Iterable[tuple[str, str | None]],
                delete: Callable[[str], None]) -> list[Deletion]:
    """``delete`` each ``(kind, id)`` (entries without an id are skipped) and say how each
    went: an object already gone counts as done, any other provider error is a failure
    (the next object is still tried)."""
    done: list[Deletion] = []
    for kind, object_id in objects:
        if not object_id:
            continue
        try:
            delete(object_id)
        except ResourceGoneError:
            done.append(Deletion(kind, object_id, DeletionOutcome.GONE))
        except ProviderError as exc:
            done.append(Deletion(kind, object_id, DeletionOutcome.FAILED, error=str(exc)))
        else:
            done.append(Deletion(kind, object_id, DeletionOutcome.DELETED))
    return done


def delete_orphan(name: str, delete: Callable[[str], None], *, provider: str) -> None:
    """Delete an uploaded file whose batch was never created; a failure is only logged (the
    provider expires files on its own)."""
    try:
        delete(name)
    except ProviderError as exc:
        log.warning("llmbatch.provider.orphan_file", provider=provider, file=name,
                    error=str(exc))
