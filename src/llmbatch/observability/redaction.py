"""The one redaction step: what llmbatch writes about a job (log lines, timeline events, the
error columns, webhook payloads, CLI error lines) passes through ``redact`` first.

What it masks: email addresses, phone numbers (international ``+`` form, or grouped like
``(555) 123-4567``), card numbers (13-19 digits, Luhn-checked, so an ordinary long number
stays), API keys and tokens of the common shapes (``sk-...``, ``Bearer ...``, ``AIza...``,
``ghp_...``, ``xox?-...``, ``AKIA...``, JWTs), the password in a URL (``scheme://user:***@``),
and the patterns of ``privacy.patterns``. Each becomes a ``[kind]`` marker.

Stored requests and results are the user's data and never pass through here.

Pure functions over strings, free of I/O, so the domain can call it where it quotes provider
text (``domain.batch``, next to ``escape_text``). The configured patterns are process-wide:
``configure_redaction`` at start-up (``bootstrap.build_runtime`` calls it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["Redactor", "configure_redaction", "luhn_ok", "redact", "redact_value",
           "redactor"]

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):[^@/\s]+@")
_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
_PHONE = re.compile(
    r"(?<![\w+])\+\d(?:[ .-]?\(?\d\)?){7,14}(?!\w)"  # +44 20 7946 0958, +1-555-123-4567
    r"|(?<![\w(])\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}(?!\w)")  # (555) 123-4567, 555.123.4567
# A key starts where a word does not: at the start of the text, after a space, punctuation,
# ``=``, ``:``, quotes or ``_`` (``OPENAI_KEY_sk-...``), never inside an ordinary word
# (``task-...``, ``risk-...``, ``flask-...``). Python's ``\b`` would refuse the ``_`` case
# (``_`` is a word character), hence an explicit look-behind.
_START = r"(?<![^\W_])"  # not after a letter or digit (of any script)
_KEYS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bBearer\s+[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE), "Bearer [token]"),
    (re.compile(_START + r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}"),
     "[token]"),
    # Real ``sk-`` keys are random, so they hold a digit; ``sk-learn-compatible`` does not.
    (re.compile(_START + r"sk-(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{12,}"), "[api-key]"),
    (re.compile(_START + r"AIza[0-9A-Za-z_-]{20,}"), "[api-key]"),
    (re.compile(_START + r"(?:ghp|gho|ghs|ghu|ghr|github_pat)_[A-Za-z0-9_]{20,}"), "[api-key]"),
    (re.compile(_START + r"xox[abprs]-[A-Za-z0-9-]{10,}"), "[api-key]"),
    (re.compile(_START + r"AKIA[0-9A-Z]{16}(?![^\W_])"), "[api-key]"),
)


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum card numbers carry."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "[card]" if 13 <= len(digits) <= 19 and luhn_ok(digits) else match.group(0)


class Redactor:
    """Masks the built-in shapes and ``extra`` regular expressions (``privacy.patterns``)."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self._extra = tuple(re.compile(p) for p in extra)

    def __call__(self, text: str) -> str:
        return self.text(text)

    def text(self, text: str) -> str:
        """``text`` with every sensitive shape masked (the same object when there is none
        of the characters those shapes need)."""
        if not text:
            return text
        text = _URL_PASSWORD.sub(r"\g<head>:***@", text)
        for pattern, marker in _KEYS:
            text = pattern.sub(marker, text)
        if "@" in text:
            text = _EMAIL.sub("[email]", text)
        text = _CARD.sub(_card, text)
        text = _PHONE.sub("[phone]", text)
        for pattern in self._extra:
            text = pattern.sub("[redacted]", text)
        return text

    def value(self, value: Any) -> Any:
        """A JSON-like value with every string in it (keys too) redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(k) if isinstance(k, str) else k: self.value(v)
                    for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value


_current: list[Redactor] = [Redactor()]


def configure_redaction(patterns: Iterable[str] = ()) -> Redactor:
    """Set the process-wide redactor (built-in shapes plus ``patterns``)."""
    _current[0] = Redactor(patterns)
    return _current[0]


def redactor() -> Redactor:
    """The process-wide redactor."""
    return _current[0]


def redact(text: str) -> str:
    """``text`` through the process-wide redactor."""
    return _current[0].text(text)


def redact_value(value: Any) -> Any:
    """A JSON-like value through the process-wide redactor."""
    return _current[0].value(value)
