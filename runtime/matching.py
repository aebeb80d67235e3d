"""Partial matching of JSON values: what a test expects against what a run produced.

`first_mismatch(expected, got)` returns None when `got` matches, else a `Mismatch` naming the
first path where it does not. Objects match partially (every expected key must be there and
match; extra keys are fine), lists match item by item and must have the same length, other
values must be equal (`1200` equals `1200.0`, but `true` is not `1`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Mismatch", "first_mismatch"]

_MISSING = object()


@dataclass(frozen=True, slots=True)
class Mismatch:
    """Where `got` differs from `expected`: `path` like `body.lines[1].sku` ("" is the value)."""

    path: str
    expected: Any
    got: Any
    missing: bool = False
    """The expected key is absent (then `got` is None)."""


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _same_scalar(expected: Any, got: Any) -> bool:
    if isinstance(expected, bool) or isinstance(got, bool):
        return type(expected) is type(got) and expected == got
    return bool(expected == got)


def first_mismatch(expected: Any, got: Any, path: str = "") -> Mismatch | None:
    """The first place where `got` does not match `expected` (see the module doc), or None."""
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return Mismatch(path, expected, got)
        for key, want in expected.items():
            value = got.get(key, _MISSING)
            if value is _MISSING:
                return Mismatch(_join(path, str(key)), want, None, missing=True)
            found = first_mismatch(want, value, _join(path, str(key)))
            if found is not None:
                return found
        return None
    if isinstance(expected, list):
        if not isinstance(got, list) or len(got) != len(expected):
            return Mismatch(path, expected, got)
        for index, (want, value) in enumerate(zip(expected, got, strict=True)):
            found = first_mismatch(want, value, _join(path, index))
            if found is not None:
                return found
        return None
    return None if _same_scalar(expected, got) else Mismatch(path, expected, got)
