"""JSONata regular expressions run with RE2: linear in the text; refused when RE2 cannot run them.

Python's `re` (jsonata-python's default) took 100 s on the first test's pattern and text.
"""

from __future__ import annotations

import json
from typing import Any

import jsonata
import pytest

from components.patterns import PatternError, compile_pattern
from runtime.errors import ExpressionError
from runtime.expressions import ExpressionLimits, compile_value, evaluate
from runtime.jsonata_engine import parse
from runtime.jsonata_regex import JsonataPattern

LIMITS = ExpressionLimits()
EVIL = "a" * 30 + "!"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("$contains(trigger.body.s, /^(a+)+$/)", False),
        ("$contains(trigger.body.s & 'b', /^(a|aa)+!b$/)", True),
        ("$count($match(trigger.body.s, /(a|a)*$/))", 2),
        ("$replace(trigger.body.s, /^(a+)+$/, 'x')", EVIL),
        ("$split(trigger.body.s, /(?:a*)*!/)", ["", ""]),
        ("$exists(/^(\\w+\\s?)*$/(trigger.body.s))", False),
    ],
)
def test_a_backtracking_pattern_runs_in_linear_time(expression: str, expected: Any) -> None:
    scope = {"trigger": {"body": {"s": EVIL}}}
    assert evaluate(expression, scope, LIMITS) == expected
    assert compile_value("{{ " + expression + " }}").render(scope, LIMITS) == expected


@pytest.mark.parametrize(
    ("pattern", "construct"),
    [
        ("(a)\\1", "backreference \\1"),
        ("(?<q>a)\\k<q>", "named backreference \\k<...>"),
        ("a(?=b)", "lookahead (?=...)"),
        ("a(?!b)", "negative lookahead (?!...)"),
        ("(?<=a)b", "lookbehind (?<=...)"),
        ("(?<!a)b", "negative lookbehind (?<!...)"),
        ("(?>a+)b", "atomic group (?>...)"),
        ("a++b", "possessive quantifier ++"),
    ],
)
def test_constructs_re2_cannot_run_are_refused_at_compile_time(
    pattern: str, construct: str
) -> None:
    template = "{{ $contains(trigger.body.s, /" + pattern + "/) }}"
    with pytest.raises(ExpressionError) as caught:
        compile_value(template)
    message = caught.value.message
    assert message.startswith('Expression "$contains(trigger.body.s, /')
    assert message.endswith(f"uses a regular expression RE2 cannot run ({construct})")
    assert "Rewrite the pattern without it" in caught.value.hint
    with pytest.raises(PatternError) as refused:
        compile_pattern(pattern)
    assert refused.value.construct == construct


def test_an_invalid_pattern_says_what_is_wrong() -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_value("{{ $match(x, /a**/) }}")
    assert caught.value.message == (
        'Expression "$match(x, /a**/)" has a regular expression that is not valid: '
        "bad repetition operator: **"
    )
    with pytest.raises(PatternError) as invalid:
        compile_pattern("[a")
    assert invalid.value.construct is None
    assert invalid.value.reason == "missing ]: [a"


def test_eval_compiles_its_regexes_with_re2_as_well() -> None:
    scope = {"s": EVIL}
    assert evaluate("$eval('$contains(s, /^(a+)+$/)')", scope, LIMITS) is False
    with pytest.raises(ExpressionError, match="D3120"):
        evaluate("$eval('$contains(s, /(a)\\\\1/)')", scope, LIMITS)


def test_regex_literals_are_compiled_by_re2() -> None:
    assert isinstance(parse("/a+/").ast.value, JsonataPattern)


# Expressions whose results RE2 must give exactly as jsonata-python with Python's `re` did.
SCOPE = {
    "s": "Order INV-0042 and inv-7, total 12.50 EUR\nsecond line: café €5",
    "csv": "a, b,c ,, d",
    "word": "banana",
}
SAME_AS_RE = [
    "$match(s, /INV-(\\d+)/i)",
    "$match(s, /(\\w+)-(\\d+)/)",
    "$match(s, /^\\w+/m)",
    "$match(s, /x(y)?/)",
    "$match(word, /an/, 1)",
    "$contains(s, /caf\u00e9/)",
    "$contains(s, /eur$/i)",
    "$contains(s, /line:/)",
    "$split(csv, /\\s*,\\s*/)",
    "$split(csv, /,/, 2)",
    "$split(word, /(n)/)",
    "$replace(s, /(\\d+)\\.(\\d+)/, '$2.$1')",
    "$replace(s, /INV-(\\d+)/i, '[$0|$1]')",
    "$replace(word, /(a)/, '$2-$12-$$')",
    "$replace(word, /a/, 'é€', 2)",
    "$replace(word, /n(a)/, function($m) { $uppercase($m.groups[0]) })",
    "$replace(word, /(?:)/, '-')",
    "/an/(word).match",
    "/an/(word).next().start",
    "$match(s, /\\u0049NV/)",
]


@pytest.mark.parametrize("expression", SAME_AS_RE)
def test_results_are_those_of_the_re_module(expression: str) -> None:
    with_re = json.loads(json.dumps(jsonata.Jsonata(expression).evaluate(SCOPE, {})))
    assert evaluate(expression, SCOPE, LIMITS) == with_re


def test_javascript_syntax_that_re_lacked() -> None:
    assert evaluate("$match(s, /(?<code>[A-Z]{3})/).groups", SCOPE, LIMITS) == ["INV", "EUR"]


def test_replacement_text_is_literal_apart_from_group_references() -> None:
    # `re` read "\\t" in a replacement as a tab and refused "\\q"; JSONata (JavaScript) does not.
    assert evaluate("$replace('a-b', /-/, '\\\\t\\\\q')", {}, LIMITS) == "a\\t\\qb"
