"""Masking secret values in what is recorded: one place for the engine and its hosts."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["MASK", "redact", "secret_values"]

MASK = "***"
_MIN_LENGTH = 4
"""Shorter values would mask ordinary text (and say little about the secret anyway)."""


def secret_values(values: Iterable[str]) -> tuple[str, ...]:
    """The values worth masking, longest first so a secret containing another is masked whole."""
    return tuple(sorted({v for v in values if len(v) >= _MIN_LENGTH}, key=len, reverse=True))


def redact(value: Any, secrets: tuple[str, ...]) -> Any:
    """A copy of a JSON value with every secret replaced by `***` in its strings and keys."""
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, MASK)
        return value
    if isinstance(value, dict):
        return {redact(k, secrets): redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, secrets) for v in value]
    return value
