"""Logs, metrics and redaction."""
