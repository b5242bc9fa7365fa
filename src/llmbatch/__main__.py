"""``python -m llmbatch``: the CLI."""

from llmbatch.cli.main import main

main()
