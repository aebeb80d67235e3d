"""Text that is not Unicode: lone surrogates, found and shown.

JSON can spell a surrogate code point on its own (`"\\ud800"`) and Python's `json` reads it into a
`str`, but such a string cannot be encoded as UTF-8: SQLite, the secret box, YAML export and every
JSON answer fail on it. Input is refused where it enters, naming the field, with these helpers.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["NOT_UNICODE", "escaped", "lone_surrogate"]

_SURROGATE = re.compile("[\ud800-\udfff]")

NOT_UNICODE = "a lone surrogate, which is not valid Unicode text; remove it or fix the escape"
"""Why such text is refused, for messages: "holds \\ud800, {NOT_UNICODE}"."""


def escaped(text: str) -> str:
    """`text` with each surrogate written as its escape (`\\ud800`), safe to encode and show."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def lone_surrogate(value: Any) -> tuple[tuple[int | str, ...], str] | None:
    """(path, escaped character) of a surrogate in the strings or keys of a JSON-like value (the
    first in document order, keys before values); None when all its text is valid Unicode. A key
    holding one is the path's last part."""
    stack: list[tuple[tuple[int | str, ...], Any]] = [((), value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, str):
            if found := _SURROGATE.search(node):
                return path, escaped(found.group())
        elif isinstance(node, dict):
            for key in node:
                if isinstance(key, str) and (found := _SURROGATE.search(key)):
                    return (*path, key), escaped(found.group())
            stack.extend(((*path, key), item) for key, item in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend(((*path, i), item) for i, item in reversed(list(enumerate(node))))
    return None
