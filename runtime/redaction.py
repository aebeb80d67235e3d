"""Masking secret values in what is recorded: one place for the engine and its hosts."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from components.api import Connection, TokenSource

__all__ = ["MASK", "credential_header", "redact", "secret_values", "watch_tokens"]

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


class _WatchedTokens:
    """A connection's `TokenSource` that reports every token it hands out."""

    def __init__(self, tokens: TokenSource, seen: Callable[[str], None]) -> None:
        self._tokens = tokens
        self._seen = seen

    async def access_token(self) -> str:
        token = await self._tokens.access_token()
        self._seen(token)
        return token

    async def refreshed(self, rejected: str) -> str:
        token = await self._tokens.refreshed(rejected)
        self._seen(token)
        return token


def watch_tokens(
    connections: Mapping[str, Connection], seen: Callable[[str], None]
) -> Mapping[str, Connection]:
    """`connections` with each OAuth token source reporting the tokens it hands out to `seen`:
    a token refreshed during a run was not among the values known when it started, and must be
    masked like them."""
    if all(c.tokens is None for c in connections.values()):
        return connections
    return {
        key: c if c.tokens is None else replace(c, tokens=_WatchedTokens(c.tokens, seen))
        for key, c in connections.items()
    }
