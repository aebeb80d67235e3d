"""Property: expressions over any JSON scope give a JSON value or raise `ExpressionError` /
`LimitExceeded`, nothing else, whether the expression is a known one or arbitrary text."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from runtime.errors import ExpressionError, LimitExceeded
from runtime.expressions import ExpressionLimits, evaluate, render
from tests.fuzz.strategies import json_values

EXPRESSIONS = [
    "trigger.body",
    "trigger.body.a",
    "trigger.body.a.b[0]",
    "trigger.body[0]",
    "trigger.body.a + 1",
    "trigger.body.a * trigger.body.b",
    "trigger.body.a / trigger.body.b",
    "trigger.body.a & trigger.body.b",
    "trigger.body.a = trigger.body.b",
    "trigger.body.a > 3 ? 'big' : 'small'",
    "trigger.body.a and trigger.body.b or trigger.body.c",
    "$count(trigger.body)",
    "$sum(trigger.body)",
    "$max(trigger.body.*)",
    "$string(trigger.body)",
    "$number(trigger.body.a)",
    "$keys(trigger.body)",
    "$lookup(trigger.body, 'a')",
    "$uppercase(trigger.body.a)",
    "$substring(trigger.body.a, 1, 3)",
    "$split(trigger.body.a, ',')",
    "$join(trigger.body, ',')",
    "$contains(trigger.body.a, /x+y/)",
    "$replace(trigger.body.a, 'a', 'b')",
    "$sort(trigger.body)",
    "$reverse(trigger.body)",
    "$distinct(trigger.body)",
    "$map(trigger.body, function($v) { $v })",
    "$filter(trigger.body, function($v) { $v })",
    "$reduce(trigger.body, function($a, $b) { $a + $b })",
    "trigger.body[a > 1]",
    "trigger.body.**",
    "$each(trigger.body, function($v, $k) { $k })",
    "$merge(trigger.body)",
    "$spread(trigger.body)",
    "$type(trigger.body)",
    "$boolean(trigger.body)",
    "$exists(trigger.body.a)",
    "$formatNumber(trigger.body.a, '#,##0.00')",
    "$fromMillis(trigger.body.a)",
    "$toMillis(trigger.body.a)",
    "$base64decode(trigger.body.a)",
    "$eval(trigger.body.a)",
    "{ 'x': trigger.body.a, 'y': [trigger.body.b] }",
]
LIMITS = ExpressionLimits()


def _check_json(value: Any) -> None:
    json.dumps(value, allow_nan=False)  # "JSON in, JSON out"


@given(expression=st.sampled_from(EXPRESSIONS), body=json_values)
def test_known_expressions_on_any_scope(expression: str, body: Any) -> None:
    try:
        _check_json(evaluate(expression, {"trigger": {"body": body}}, LIMITS))
    except (ExpressionError, LimitExceeded) as exc:
        message = exc.message  # names the expression and the problem
        assert message


@given(
    text=st.text(
        st.sampled_from(list("abc.$()[]{}:,'\"+-*/%&=<>!?~^|@#` 0123456789\\")), max_size=40
    ),
    body=json_values,
)
def test_arbitrary_templates_on_any_scope(text: str, body: Any) -> None:
    try:
        _check_json(render("{{ " + text + " }}", {"trigger": {"body": body}}, LIMITS))
    except (ExpressionError, LimitExceeded) as exc:
        message = exc.message
        assert message
