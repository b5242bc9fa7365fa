"""The Celery node name of a worker process: unique unless the operator names it.

Celery names every worker ``celery@<host>`` unless told otherwise, and each node owns a
control ("pidbox") queue named after it. On RabbitMQ that queue is exclusive, so a second
worker on the same host meets ``ResourceLocked ... celery@<host>.celery.pidbox`` and exits
(with status 0); on Redis two nodes of one name silently share a mailbox. A name that
carries the pid and a random suffix lets any number of ``llmbatch worker`` processes run on
one host with any broker; ``%h`` is expanded by Celery to the host name. An explicit
``--hostname`` (for a fixed name an operator wants to address) still wins.
"""

from __future__ import annotations

import os
import uuid

__all__ = ["NODE_PREFIX", "node_name"]

NODE_PREFIX = "llmbatch"


def node_name(explicit: str | None = None) -> str:
    """``explicit`` when given, else ``llmbatch-<pid>-<8 hex>@%h`` (new on every start)."""
    if explicit:
        return explicit
    return f"{NODE_PREFIX}-{os.getpid()}-{uuid.uuid4().hex[:8]}@%h"
