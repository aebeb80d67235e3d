"""The hostile catalogue of expressions, as data: one row per `{{ }}` template and what must follow.

`expect` is `value` (it evaluates; to `value` when given), `compile` (refused when compiled: a
file holding it is not imported), or the error class evaluation raises: `ExpressionError` or
`LimitExceeded`, with `fragment` in its message. `body` is what the request sends, read as
`trigger.body`. `fixed_by` names the issue-19 fix a row needs; until it is merged the row fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from tests.hostile.harness import UNSET

__all__ = ["EXPRESSIONS", "ExpressionCase"]


@dataclass(frozen=True)
class ExpressionCase:
    """One template, the request body it reads, and what evaluating it must give."""

    id: str
    expression: str
    expect: Literal["value", "compile", "ExpressionError", "LimitExceeded"]
    body: Any = None
    value: Any = UNSET
    fragment: str = ""
    fixed_by: str = ""

    @property
    def template(self) -> str:
        return "{{ " + self.expression + " }}"


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


RE2 = "2: RE2 regexes; lookaround and backreferences refused at compile"
_RECURSE = "($f := function($x){ $f($x + 1) }; $f(0))"

# fmt: off
EXPRESSIONS: list[ExpressionCase] = [
    # --- regular expressions (issue 19) -----------------------------------------------------------
    ExpressionCase("regex-catastrophic-backtracking", "$match(trigger.body.s, /^(a+)+$/)", "value",
                   body={"s": "a" * 30 + "!"}, fixed_by=RE2),
    ExpressionCase("regex-lookahead", '$contains("ab", /(?=a)a/)', "compile", fixed_by=RE2),
    ExpressionCase("regex-lookbehind", '$match("ab", /(?<=a)b/)', "compile", fixed_by=RE2),
    ExpressionCase("regex-backreference", '$replace("aa", /(a)\\1/, "b")', "compile",
                   fixed_by=RE2),
    ExpressionCase("regex-linear", "$contains(trigger.body.s, /^a+!$/)", "value",
                   body={"s": "a" * 30 + "!"}, value=True),
    # --- bounds ---------------------------------------------------------------------------------
    ExpressionCase("infinite-recursion", _RECURSE, "LimitExceeded", fragment=_RECURSE),
    ExpressionCase("recursion-inside-eval", f'$eval("{_RECURSE}")', "LimitExceeded"),
    ExpressionCase("range-over-the-limit", "[1..100001]", "LimitExceeded", fragment="range"),
    ExpressionCase("sum-of-ten-million", "$sum([1..9999999])", "LimitExceeded", fragment="range"),
    ExpressionCase("range-inside-eval", '$eval("[1..100001]")', "LimitExceeded", fragment="range"),
    ExpressionCase("output-over-1mib", '$pad("", 2000000, "x")', "LimitExceeded",
                   fragment="the limit is 1,048,576"),
    ExpressionCase("pad-to-100-million", '$pad("", 100000000)', "LimitExceeded"),
    # --- errors ---------------------------------------------------------------------------------
    ExpressionCase("syntax-error", "$$$ (", "compile", fragment="does not compile"),
    ExpressionCase("unclosed-braces", "{", "compile", fragment="without a matching"),
    ExpressionCase("divide-by-zero", "1/0", "ExpressionError", fragment="1/0"),
    ExpressionCase("power-overflow", "$power(10, 400)", "ExpressionError"),
    ExpressionCase("number-out-of-range", '$number("1e400")', "ExpressionError",
                   fragment="out of range"),
    ExpressionCase("error-function", '$error("boom")', "ExpressionError", fragment="boom"),
    ExpressionCase("single-of-two", "$single([1, 2])", "ExpressionError", fragment="$single"),
    ExpressionCase("date-from-garbage", '$toMillis("not a date")', "ExpressionError"),
    ExpressionCase("date-beyond-the-calendar", "$fromMillis(1e20)", "ExpressionError"),
    ExpressionCase("arithmetic-on-request-text", "trigger.body.n * 2", "ExpressionError",
                   body={"n": "ten"}),
    # --- no way out of the run context ----------------------------------------------------------
    ExpressionCase("python-attribute", "trigger.body.__class__", "value", body={}, value=None),
    ExpressionCase("python-dunder-chain", "$$.__class__.__mro__", "value", value=None),
    ExpressionCase("python-attribute-inside-eval", '$eval("$$.__class__")', "value", value=None),
    ExpressionCase("prototype-lookup", '$lookup({}, "__proto__")', "value", value=None),
    ExpressionCase("request-data-is-not-code", "trigger.body.code", "value",
                   body={"code": "{{ $pad('', 100000000) }}"}, value="{{ $pad('', 100000000) }}"),
    ExpressionCase("deeply-nested-request-body", "$count(trigger.body)", "value",
                   body=_nested(150), value=1),
]
# fmt: on
