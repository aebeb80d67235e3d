"""Regular expressions written by users, compiled by RE2 so that matching is linear in the text.

A backtracking engine (Python's `re`, JavaScript's) can take exponential time on patterns like
`(a+)+$`, and a match holds the thread (and the GIL) until it ends: one request could stall every
execution. RE2 matches in time linear in the text for every pattern it accepts; the price is that
it has no backreferences (`\\1`, `\\k<name>`), no lookaround (`(?=`, `(?!`, `(?<=`, `(?<!`), no
atomic groups and no possessive quantifiers. `compile_pattern` raises `PatternError` naming such
a construct, so the caller can tell the user what to rewrite.

The syntax is RE2's (https://github.com/google/re2/wiki/Syntax): Python's and JavaScript's for
everything else that is common (classes, `\\d \\w \\s \\b`, `{m,n}`, `(?:...)`, `(?P<name>...)` and
`(?<name>...)`, `\\x{41}`; repeat counts up to 1000). Compiled patterns are cached by RE2's module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

import re2

__all__ = ["Pattern", "PatternError", "compile_pattern"]

if TYPE_CHECKING:
    Pattern: TypeAlias = re2._Regexp[str]
else:  # the class is generic only in its stubs
    Pattern = re2._Regexp
"""A compiled pattern: `search`, `match`, `fullmatch`, `finditer`, `split`, `sub` like `re`'s."""

# RE2's error text (after the colon: what it stopped at) -> the construct to name.
_OPERATORS = {
    "(?=": "lookahead (?=...)",
    "(?!": "negative lookahead (?!...)",
    "(?<=": "lookbehind (?<=...)",
    "(?<!": "negative lookbehind (?<!...)",
    "(?>": "atomic group (?>...)",
}


class PatternError(ValueError):
    """RE2 cannot compile a pattern.

    `construct` names a feature RE2 does not run at all (e.g. `backreference \\1`); it is None when
    the pattern is simply invalid, and `reason` (RE2's own words) says why.
    """

    def __init__(self, pattern: str, reason: str, construct: str | None) -> None:
        self.pattern = pattern
        self.reason = reason
        self.construct = construct
        super().__init__(construct or reason)


def compile_pattern(pattern: str, *, ignore_case: bool = False, multiline: bool = False) -> Pattern:
    """Compile `pattern` with RE2; `multiline` lets `^` and `$` match at line breaks.

    Raises `PatternError` for a pattern RE2 refuses.
    """
    options = re2.Options()
    options.log_errors = False  # RE2 would print every refused pattern to stderr
    options.case_sensitive = not ignore_case
    try:
        return re2.compile(f"(?m){pattern}" if multiline else pattern, options)
    except re2.error as exc:
        raw = exc.args[0] if exc.args else ""
        reason = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        raise PatternError(pattern, reason, _construct(pattern, reason)) from None


def _construct(pattern: str, reason: str) -> str | None:
    kind, _, where = reason.partition(": ")
    if kind == "invalid escape sequence":
        if len(where) == 2 and where[1] in "123456789":
            return f"backreference {where}"
        if where == "\\k":
            return "named backreference \\k<...>"
    elif kind == "invalid perl operator":
        if where in _OPERATORS:
            return _OPERATORS[where]
        if where == "(?P" and "(?P=" in pattern:
            return "named backreference (?P=...)"
    elif kind == "bad repetition operator" and where.endswith("+") and len(where) == 2:
        return f"possessive quantifier {where}"
    return None
