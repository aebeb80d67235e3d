"""Template text: `{{ }}` holes split from literal text, and the step ids an expression reads.

Pure text work, no JSONata: it runs on templates that do not compile too, so validation can report
a syntax error and a missing step at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from runtime.errors import ExpressionError

__all__ = ["Hole", "quote", "references_in", "split"]

_LITERALS = re.compile(r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|/\*.*?\*/""", re.DOTALL)
_STEP_REF = re.compile(
    r"(?:(?<![\w$.`])|(?<=\$\.))steps\s*\.\s*(?:`([^`]*)`|([A-Za-z_]\w*))", re.ASCII
)


def quote(expression: str) -> str:
    """`expression` in double quotes for a message, on one line, cut at 80 characters."""
    text = " ".join(expression.split())
    return f'"{text if len(text) <= 80 else text[:77] + "..."}"'


def references_in(expression: str) -> frozenset[str]:
    """Step ids read as `steps.<id>` in one expression; string literals and comments ignored."""
    code = _LITERALS.sub('""', expression)
    return frozenset(quoted or plain for quoted, plain in _STEP_REF.findall(code))


def _skip_quoted(text: str, i: int) -> int:
    """Index just past the string or backtick name that starts at `i`."""
    mark, i = text[i], i + 1
    while i < len(text):
        if text[i] == "\\" and mark != "`":
            i += 2
            continue
        if text[i] == mark:
            return i + 1
        i += 1
    return i


def _hole_end(text: str, start: int) -> int:
    """Index of the `}}` closing the hole whose expression starts at `start`, or -1.

    Braces of object constructors (`{{ {"a": {"b": 1}} }}`), strings and comments are skipped.
    """
    depth, i = 0, start
    while i < len(text):
        ch = text[i]
        if ch in "\"'`":
            i = _skip_quoted(text, i)
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = len(text) if end < 0 else end + 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            if depth == 0 and text.startswith("}}", i):
                return i
            depth = max(depth - 1, 0)
        i += 1
    return -1


def split(text: str, *, lenient: bool = False) -> list[str | Hole]:
    """Literal text and `{{ }}` holes, in order. Unclosed braces raise unless `lenient`."""
    parts: list[str | Hole] = []
    i = 0
    while (start := text.find("{{", i)) >= 0:
        end = _hole_end(text, start + 2)
        if end < 0:
            if not lenient:
                raise ExpressionError(
                    f"Template {quote(text)} has '{{{{' without a matching '}}}}'",
                    hint="Close the expression with }}.",
                )
            end = len(text)
        if start > i:
            parts.append(text[i:start])
        parts.append(Hole(text[start + 2 : end].strip()))
        i = end + 2
    if i < len(text):
        parts.append(text[i:])
    return parts


@dataclass(frozen=True, slots=True)
class Hole:
    expression: str
