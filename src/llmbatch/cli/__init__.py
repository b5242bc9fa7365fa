"""Command-line interface (typer + rich). Thin: parse, call a service, print, map errors."""
