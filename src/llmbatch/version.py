"""The package's version, in a module of its own.

Modules inside the package (the CLI's ``--version``, the API's OpenAPI description) read it
from here rather than from ``llmbatch`` itself: the package's ``__init__`` is the public face
that hands out ``Client``, so a module importing it would depend on the whole client.
"""

__version__ = "0.1.0"
