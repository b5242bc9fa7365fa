"""Checks of configuration values that pydantic's types cannot express: the database and broker
URLs (their scheme must be one llmbatch runs on, so ``'not a url'`` or ``mysql://`` is refused
by ``config validate`` with its path instead of crashing ``submit``), and reading the YAML file
itself safely (invalid UTF-8, hostile or very deep YAML refused in one line naming the file).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Final

import yaml

from llmbatch.errors import ConfigError

__all__ = [
    "BROKER_SCHEMES",
    "DATABASE_SCHEMES",
    "MAX_CONFIG_BYTES",
    "MAX_YAML_DEPTH",
    "check_broker_url",
    "check_database_url",
    "read_yaml_mapping",
]

# SQLite (embedded) and PostgreSQL (scale-out), with any driver SQLAlchemy names after a "+".
DATABASE_SCHEMES: Final = ("sqlite", "postgresql")
# kombu transports llmbatch is tested on: its SQLAlchemy transport (embedded), Redis, RabbitMQ.
BROKER_SCHEMES: Final = ("sqla+sqlite", "sqla+postgresql", "redis", "rediss", "amqp", "amqps",
                         "pyamqp", "memory")
MAX_CONFIG_BYTES: Final = 1024 * 1024
MAX_YAML_DEPTH: Final = 32
_SCHEME: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def _scheme(url: str) -> str | None:
    match = _SCHEME.match(url)
    return match.group(1).lower() if match else None


def check_database_url(url: str) -> str:
    """``url`` if SQLAlchemy can open it here as SQLite or PostgreSQL; else ``ValueError``."""
    scheme = _scheme(url)
    if scheme is None:
        raise ValueError("not a URL (expected sqlite:///PATH or postgresql+psycopg://USER@HOST"
                         "/DB)")
    backend = scheme.split("+", 1)[0]
    if backend not in DATABASE_SCHEMES:
        raise ValueError(f"unsupported database {scheme!r}: llmbatch runs on "
                         f"{' or '.join(DATABASE_SCHEMES)}")
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise ValueError(f"not a valid database URL: {exc}") from None
    return url


def check_broker_url(url: str) -> str:
    """``url`` if its scheme is a broker transport llmbatch supports; else ``ValueError``."""
    scheme = _scheme(url)
    if scheme is None:
        raise ValueError("not a URL (expected sqla+sqlite:///PATH, redis://HOST:6379/0 or "
                         "amqp://USER:PASS@HOST:5672//)")
    if scheme not in BROKER_SCHEMES:
        raise ValueError(f"unsupported broker {scheme!r}: use one of "
                         f"{', '.join(BROKER_SCHEMES)}")
    return url


def read_yaml_mapping(path: Path) -> dict[str, Any] | None:
    """The YAML mapping in ``path`` (None for an empty file). Refused in one ``ConfigError``
    naming the file: unreadable, over ``MAX_CONFIG_BYTES``, not UTF-8, not YAML, aliases
    (a "billion laughs" expands a few lines into gigabytes), nesting past ``MAX_YAML_DEPTH``,
    a top level that is not a mapping."""
    source = str(path)
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read config: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{source}: larger than {MAX_CONFIG_BYTES:,} bytes; not a config file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not valid UTF-8 (byte {exc.start + 1})") from None
    deep = _flow_too_deep(text)
    if deep is not None:
        raise ConfigError(f"{source}:{deep}: nested deeper than {MAX_YAML_DEPTH} levels")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {_one_line(exc)}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested deeper than {MAX_YAML_DEPTH} levels") from None
    if root is None:
        return None
    _check_tree(root, source)
    try:
        loaded = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        raise ConfigError(f"{source}: not valid YAML: {_one_line(exc)}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    return loaded


def _flow_too_deep(text: str) -> int | None:
    """The line where ``[``/``{`` nesting passes ``MAX_YAML_DEPTH``, found by one linear scan
    before PyYAML sees the text: its scanner takes quadratic time in flow nesting (3,000
    brackets, a 6 KB file, keep it busy for seconds). Quotes and comments are skipped; a
    bracket inside a plain scalar counts, which only matters past 32 unclosed ones."""
    depth, line, quote, comment = 0, 1, "", False
    previous = "\n"
    for char in text:
        if char == "\n":
            line += 1
            comment = False
        elif comment:
            pass
        elif quote:
            if char == quote and not (quote == '"' and previous == "\\"):
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and previous in " \t\n":
            comment = True
        elif char in "[{":
            depth += 1
            if depth > MAX_YAML_DEPTH:
                return line
        elif char in "]}":
            depth = max(depth - 1, 0)
        previous = char
    return None


def _check_tree(root: yaml.Node, source: str) -> None:
    """No aliases, no nesting past ``MAX_YAML_DEPTH``, keys that are plain values."""
    stack: list[tuple[yaml.Node, int]] = [(root, 0)]
    seen: set[int] = set()
    while stack:
        node, depth = stack.pop()
        if id(node) in seen:
            raise ConfigError(f"{source}:{node.start_mark.line + 1}: YAML aliases (*name) "
                              "are not accepted in a config file")
        seen.add(id(node))
        if depth > MAX_YAML_DEPTH:
            raise ConfigError(f"{source}:{node.start_mark.line + 1}: nested deeper than "
                              f"{MAX_YAML_DEPTH} levels")
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if not isinstance(key, yaml.ScalarNode):
                    raise ConfigError(f"{source}:{key.start_mark.line + 1}: a key must be a "
                                      "plain value, not a list or mapping")
                stack.append((value, depth + 1))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]
