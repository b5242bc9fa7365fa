"""llmbatch: bulk LLM work through the providers' native batch APIs.

Durable jobs in a database, Celery orchestration, one request format for every provider.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
