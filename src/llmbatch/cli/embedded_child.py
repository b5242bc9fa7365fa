"""``python -m llmbatch.cli.embedded_child <llmbatch args>``: the embedded worker's process.

It starts the lifeline watch (``cli/embedded.py``), then runs the ordinary ``llmbatch``
command with the arguments. Apart from ``cli/embedded.py`` because it imports the whole CLI,
while the CLI's commands import ``cli/embedded.py`` to start the worker.
"""

from __future__ import annotations

import os
import sys

from llmbatch.cli.embedded import LIFELINE_ENV, watch_lifeline

__all__ = ["run"]


def run() -> None:
    """The lifeline, then the CLI."""
    fd = os.environ.pop(LIFELINE_ENV, None)
    if fd is not None and fd.isdigit():
        watch_lifeline(int(fd))
    from llmbatch.cli.main import main

    sys.argv[0] = "llmbatch"
    main()


if __name__ == "__main__":
    run()
