"""The REST API (``llmbatch api``): FastAPI over the same services and read models as the CLI."""
