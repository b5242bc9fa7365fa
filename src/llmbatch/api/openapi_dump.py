"""``python -m llmbatch.api.openapi_dump [PATH]``: write the API's OpenAPI description (the
one ``/openapi.json`` serves) to PATH (default docs/openapi.json), for the repository copy."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from llmbatch.api.app import create_app
from llmbatch.bootstrap import build_runtime
from llmbatch.config import AppConfig, DatabaseConfig


def main(argv: list[str]) -> None:
    path = Path(argv[0]) if argv else Path("docs/openapi.json")
    # The description depends on no configuration; an in-memory database is never opened.
    rt = build_runtime(AppConfig(database=DatabaseConfig(url="sqlite://")))
    schema = create_app(rt).openapi()
    path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
