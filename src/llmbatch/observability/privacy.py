"""``privacy:`` in the configuration (its own module: config.py only names it)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["PrivacyConfig"]


class PrivacyConfig(BaseModel):
    """What llmbatch masks and keeps (see ``docs/privacy.md``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    patterns: tuple[str, ...] = Field(
        (), description="Extra regular expressions masked as [redacted] wherever the built-in "
                        "shapes are (logs, events, error columns, webhook payloads)")
    retain_requests: bool = Field(
        True, description="Keep request bodies after a job ends; false drops them (results "
                          "are kept)")

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for index, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {index} is not a regular expression: {exc}") from exc
            if re.compile(pattern).search(""):
                raise ValueError(f"pattern {index} matches the empty string")
        return patterns
