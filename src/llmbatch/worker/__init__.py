"""Celery entry points: the app, the lifecycle tasks, the beat schedule. Thin by design."""
