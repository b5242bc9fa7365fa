"""Installs ``minibatch`` the way a package manager would, for the tests of this package only:
a ``*.dist-info`` directory holding ``entry_points.txt`` on ``sys.path``, which
``importlib.metadata`` (and so llmbatch's registry) reads like any installed distribution."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

ENTRY_POINTS = """\
[llmbatch.providers]
minibatch = plugin_provider.minibatch:MiniBatchProvider
"""


@pytest.fixture(scope="package", autouse=True)
def minibatch_installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The distribution ``llmbatch-minibatch``, on ``sys.path`` while this package's tests run."""
    site = tmp_path_factory.mktemp("site-packages")
    info = site / "llmbatch_minibatch-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: llmbatch-minibatch\n"
                                   "Version: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(ENTRY_POINTS, encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(site))
        yield site
