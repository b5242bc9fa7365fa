"""Signed job notifications (Standard Webhooks) from a durable outbox."""
