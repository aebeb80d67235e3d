"""JSONata's regular expressions (`/pattern/flags`) run by RE2, in time linear in the text.

jsonata-python builds every regex literal in one place: the `regex_engine` its constructor takes
(and hands on to `$eval`). `runtime.jsonata_engine.parse` passes `compile_regex`, so `$match`,
`$contains`, `$replace`, `$split` and a regex called as a function all match with RE2
(`components.patterns`): no pattern and no text can make a match backtrack.

JSONata's regex syntax is JavaScript's. RE2 reads it as JavaScript does, with these exceptions:

- `\\uXXXX` is rewritten to RE2's `\\x{XXXX}`; the flags are `i` and `m`, as in JSONata.
- Backreferences, lookaround, atomic groups and possessive quantifiers cannot run in linear time:
  the expression fails to compile with `PatternError` (`parse` turns it into an
  `ExpressionError` naming the construct), i.e. when the flow is validated or saved.
- `$replace`'s replacement text: `$0` is the match, `$N` the Nth group, `$$` a dollar sign; a
  group number beyond the pattern's groups drops its first digit and keeps the rest as text
  (`$12` with one group is group 1 then "2"), as jsonata-python does with `re`. Everything else,
  backslashes included, is literal text, as in JavaScript.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

from jsonata.regex_engine import RegexFlags

from components.patterns import Pattern, compile_pattern

__all__ = ["JsonataPattern", "compile_regex"]

_HEX = frozenset("0123456789abcdefABCDEF")


class JsonataPattern:
    """A compiled JSONata regex: the methods jsonata-python's functions call, backed by RE2."""

    __slots__ = ("compiled",)

    def __init__(self, compiled: Pattern) -> None:
        self.compiled = compiled

    def search(self, string: str) -> Any:
        return self.compiled.search(string)

    def finditer(self, string: str) -> Iterator[Any]:
        return self.compiled.finditer(string)

    def split(self, string: str, maxsplit: int = 0) -> list[str]:
        return self.compiled.split(string, maxsplit)

    def sub(self, repl: str | Callable[[Any], str], string: str, count: int = 0) -> str:
        # jsonata-python hands over `re`-style templates (`$1` rewritten to `\g<1>`); RE2's own
        # template expansion unescapes the text as Latin-1 and garbles anything else.
        if isinstance(repl, str):
            pieces = _template(repl, self.compiled.groups)
            return self.compiled.sub(lambda match: _expand(pieces, match), string, count)
        return self.compiled.sub(repl, string, count)


def compile_regex(pattern: str, flags: RegexFlags) -> JsonataPattern:
    """jsonata-python's `regex_engine`: compile one regex literal. Raises `PatternError`."""
    compiled = compile_pattern(
        _from_javascript(pattern), ignore_case=flags.case_insensitive, multiline=flags.multiline
    )
    return JsonataPattern(compiled)


def _from_javascript(pattern: str) -> str:
    """Rewrite `\\uXXXX` escapes, the one common JavaScript syntax RE2 spells differently."""
    if "\\u" not in pattern:
        return pattern
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char != "\\" or i + 1 == n:
            out.append(char)
            i += 1
            continue
        code = pattern[i + 2 : i + 6]
        if pattern[i + 1] == "u" and len(code) == 4 and _HEX.issuperset(code):
            out.append(f"\\x{{{code}}}")
            i += 6
        else:  # any other escape is kept whole, so `\\u` (a backslash, then u) stays as it is
            out.append(pattern[i : i + 2])
            i += 2
    return "".join(out)


@functools.lru_cache(maxsize=256)
def _template(template: str, groups: int) -> tuple[str | int, ...]:
    """Split a replacement into literal text and group numbers."""
    pieces: list[str | int] = []
    text: list[str] = []
    start = 0
    while (found := template.find("\\g<", start)) != -1:
        close = template.find(">", found + 3)
        digits = template[found + 3 : close] if close != -1 else ""
        if not digits.isdecimal():
            text.append(template[start : found + 3])
            start = found + 3
            continue
        text.append(template[start:found])
        kept = ""
        while int(digits) > groups and len(digits) > 1:
            digits, kept = digits[:-1], digits[-1] + kept
        if int(digits) <= groups:
            pieces.extend(("".join(text), int(digits)))
            text = []
        text.append(kept)
        start = close + 1
    text.append(template[start:])
    pieces.append("".join(text))
    return tuple(pieces)


def _expand(pieces: tuple[str | int, ...], match: Any) -> str:
    return "".join(p if isinstance(p, str) else (match.group(p) or "") for p in pieces)
