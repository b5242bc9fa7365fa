"""Services: one function per use case, called by the CLI, the API and the Celery tasks."""
