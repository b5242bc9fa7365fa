"""Integration tests: real PostgreSQL, Redis, worker processes and the emulator."""
