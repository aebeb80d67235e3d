"""Masking secret values in what is recorded: one place for the engine and its hosts."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["MASK", "credential_header", "redact", "secret_values"]

MASK = "***"
_CREDENTIAL_HEADER = re.compile(
    r"^(authorization|proxy-authorization|cookie|set-cookie)$|api[-_]?key|token|secret|signature",
    re.IGNORECASE,
)
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


def credential_header(name: str) -> bool:
    """Whether a header of this name carries a credential (Authorization, a cookie, an API key,
    a token, a secret or a signature): its value is masked, or left out, where it is kept."""
    return _CREDENTIAL_HEADER.search(name) is not None
