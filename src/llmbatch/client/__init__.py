"""The Python client: ``Client`` and ``AsyncClient`` (embedded or remote)."""

from llmbatch.client.aio import AsyncClient, AsyncJob
from llmbatch.client.backends import ApiError
from llmbatch.client.client import Client, Job

__all__ = ["ApiError", "AsyncClient", "AsyncJob", "Client", "Job"]
