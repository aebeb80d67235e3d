"""Compiled JSONata closures against the interpreter: same results, same errors, or not compiled."""

from __future__ import annotations

import functools
import random
import time
from typing import Any

import jsonata
import pytest

from runtime import expressions
from runtime.errors import FlowError, LimitExceeded
from runtime.expressions import ExpressionLimits, evaluate
from runtime.jsonata_fast import Fallback, Native, compile_ast

LIMITS = ExpressionLimits()

# --- the differential harness ------------------------------------------------------------------


@functools.cache
def _native(expression: str) -> Native | None:
    return compile_ast(jsonata.Jsonata(expression).ast)


def _shown(value: Any) -> str:
    """A strict rendering of a normalised result: repr tells 1 from 1.0 and True from 1."""
    return repr(expressions._Output("x", 10**9).convert(value))


def _interpreted(expression: str, document: dict[str, Any]) -> tuple[str, str]:
    try:
        return "value", _shown(jsonata.Jsonata(expression).evaluate(document, {}))
    except Exception as exc:
        return "error", f"{type(exc).__name__}: {exc}"


def _end_to_end(expression: str, document: dict[str, Any], *, native: bool) -> tuple[str, str]:
    """The public evaluation, with the compiled closure on or off (the same program otherwise)."""
    program = expressions._Program(expression)
    if not native:
        program.native = None
    try:
        return "value", repr(program.evaluate(document, LIMITS))
    except Exception as exc:
        return "error", f"{type(exc).__name__}: {exc}"


def check(expression: str, document: dict[str, Any]) -> bool:
    """Assert both paths agree; True when the closure answered without falling back."""
    native = _native(expression)
    assert native is not None, f"{expression!r} should compile"
    expected = _interpreted(expression, document)
    try:
        got = native(document)
    except Fallback:
        answered = False
    else:
        answered = True
        assert expected == ("value", _shown(got)), (expression, document)
    with_native = _end_to_end(expression, document, native=True)
    assert with_native == _end_to_end(expression, document, native=False), (expression, document)
    return answered


# --- a table of expressions over a few documents --------------------------------------------------

DOCUMENTS: list[dict[str, Any]] = [
    {
        "a": 3,
        "b": 4.5,
        "c": -2,
        "z": 0,
        "f": 0.1,
        "h": 2**60 + 1,
        "big": 1e300,
        "s": "DE",
        "t": "ß straße",
        "e": "",
        "yes": True,
        "no": False,
        "nul": None,
        "o": {"x": 1, "y": {"z": "deep"}, "n": None},
        "eo": {},
        "l": [1, 2],
        "one": [7],
        "lines": [{"sku": "x", "qty": 2}, {"sku": "y", "qty": 1}, {"sku": "z", "qty": 5}],
        "single": [{"qty": 3}],
        "mixed": [{"qty": 2}, 5, "s"],
        "nested": [[{"qty": 2}]],
        "empty": [],
        "obj": {"qty": 9},
    },
    {"a": "3", "b": True, "c": None, "s": 5, "t": [1], "o": 2, "lines": {"qty": 2}, "h": -0.0},
    {"a": 1e20, "b": -1e-7, "c": 10**400, "s": "", "t": "x", "o": [{"x": 1}], "lines": "text"},
    {},
]

TABLE = [
    # literals and paths
    "1", "-5", "1.5", "'text'", "true", "false", "null", "o.y.z", "o.n", "o.n.deeper", "`s`",
    "missing.path", "a.b", "s.length", "l.x",
    # arithmetic
    "a + 1", "a - b", "a * 1.2", "a / 4", "a / z", "a % 2", "c % 3", "b % 2", "a % z", "h + 1",
    "h * 1", "big * big", "big + big", "-a", "-b", "-s", "-missing", "-nul", "- -c", "a + missing",
    "missing * 2", "s + 1", "yes + 1", "nul + 1", "o + 1", "l + 1", "one + 1", "f + 0.2",
    "f * 3", "10 / 4", "7 / 7", "0 * -1", "-0.0 + 0", "a - a", "b * 2", "-h",
    # comparisons and equality
    "a > 2", "a >= 3", "a < b", "b <= a", "s < 'E'", "s > t", "a > s", "a > yes", "a < missing",
    "missing < s", "nul < 1", "o < 1", "h > 2", "h > 1.5", "h = h", "a = 3", "a = 3.0",
    "a != 4", "s = 'DE'", "s != 'de'", "yes = true", "yes = 1", "a = '3'", "a = missing",
    "missing = missing", "nul = null", "o = o", "l = l", "one = 7", "e = ''", "b = 4.5",
    # boolean logic and conditions
    "a > 2 and s = 'DE'", "a > 100 or s = 'DE'", "yes and no", "yes or missing", "e or z",
    "o and eo", "nul or f", "l and yes", "t and a", "a ? 'yes' : 'no'", "z ? 1 : 2",
    "missing ? 1 : 2", "missing ? 1", "e ? 1 : 2", "o ? o.y : eo", "l ? 1 : 2",
    "a > 2 ? b * 2 : c", "yes ? (no ? 1 : 2) : 3",
    # concatenation
    "s & '-' & t", "a & b", "s & missing", "missing & missing", "yes & no", "h & ''",
    "big & ''", "f & ''", "b & 'x'", "o & 'x'", "nul & 'x'", "l & 'x'", "c & 0.5",
    # functions
    "$count(a)", "$count(missing)", "$count(o)", "$count(nul)", "$count(l)", "$count(s)",
    "$exists(a)", "$exists(missing)", "$exists(nul)", "$exists(o.n)", "$exists(l)",
    "$string(a)", "$string(b)", "$string(h)", "$string(big)", "$string(f)", "$string(yes)",
    "$string(s)", "$string(missing)", "$string(o)", "$string(nul)", "$string(c * 1.5)",
    "$uppercase(s)", "$uppercase(t)", "$lowercase(t)", "$lowercase('ÀB')", "$uppercase(a)",
    "$uppercase(missing)", "$length(t)", "$length(e)", "$length(a)", "$length(nul)",
    "$boolean(a)", "$boolean(z)", "$boolean(e)", "$boolean(o)", "$boolean(missing)",
    "$not(yes)", "$not(e)", "$not(f)", "$not(missing)", "$uppercase(s) & ' ' & t",
    # filters
    "lines[qty > 1]", "lines[qty > 4]", "lines[qty > 9]", "lines[sku = 'y']", "lines[qty]",
    "lines[sku]", "lines[missing]", "lines[true]", "lines[qty > 1 and sku != 'z']",
    "$count(lines[qty > 1])", "$count(lines[qty > 4])", "$count(lines[qty > 9])",
    "$exists(lines[qty > 9])", "single[qty > 1]", "mixed[qty > 1]", "nested[qty > 1]",
    "empty[qty > 1]", "obj[qty > 1]", "obj[qty > 10]", "missing[qty > 1]", "nul[qty > 1]",
    "o.y[z = 'deep']", "lines[qty - 1]", "lines[qty > 1] ? 1 : 2", "$count(single[qty > 1])",
    "$count(obj[qty > 1])", "$string(lines[qty > 4])", "lines[$exists(sku)]",
]  # fmt: skip


@pytest.mark.parametrize("expression", TABLE)
def test_the_compiled_closure_matches_the_interpreter(expression: str) -> None:
    for document in DOCUMENTS:
        check(expression, document)


def test_the_table_mostly_runs_compiled() -> None:
    answered = sum(check(e, d) for e in TABLE for d in DOCUMENTS)
    assert answered > len(TABLE) * len(DOCUMENTS) // 2  # else the table tests only the fallback


# --- random expressions over random data ---------------------------------------------------------

NAMES = ["a", "b", "s", "o.x", "o.y", "items", "p.q.r", "flag"]
NUMBERS = [0, 1, -1, 2, 3, 0.5, -2.25, 1.2, 100, 10**16 + 1, 2**53, 1e300, -0.0]
STRINGS = ["", "a", "DE", "de", "10", "true", "ß", "ǅ"]
VALUES = [*NUMBERS, *STRINGS, True, False, None, float("inf"), float("nan")]


def random_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth < 2 and roll < 0.12:
        return {k: random_value(rng, depth + 1) for k in rng.sample(["x", "y", "q", "r"], 2)}
    if depth < 2 and roll < 0.2:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    return rng.choice(VALUES)


def random_document(rng: random.Random) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key in ["a", "b", "s", "o", "p", "flag", "items"]:
        if rng.random() < 0.85:
            document[key] = random_value(rng)
    if rng.random() < 0.6:
        document["items"] = [
            {"n": rng.choice(NUMBERS), "k": rng.choice(STRINGS)} for _ in range(rng.randrange(4))
        ]
    if rng.random() < 0.5:
        document["o"] = {"x": random_value(rng), "y": random_value(rng)}
    if rng.random() < 0.3:
        document["p"] = {"q": {"r": random_value(rng)}}
    return document


def random_expression(rng: random.Random, depth: int = 0) -> str:
    roll = rng.random() if depth < 3 else rng.random() * 0.3
    if roll < 0.15:
        return rng.choice([*map(str, NUMBERS[:9]), *map(repr, STRINGS), "true", "false", "null"])
    if roll < 0.3:
        return rng.choice(NAMES)
    if roll < 0.38:
        item = rng.choice(["n", "k", "missing"])
        op = rng.choice([">", "=", "!=", "<="])
        bound = rng.choice(["1", "'a'", "0.5", "true"])
        filtered = f"items[{item} {op} {bound}]"
        return rng.choice([filtered, f"$count({filtered})", f"$exists({filtered})"])
    if roll < 0.7:
        op = rng.choice(
            ["+", "-", "*", "/", "%", "=", "!=", "<", "<=", ">", ">=", "and", "or", "&"]
        )
        return f"({random_expression(rng, depth + 1)} {op} {random_expression(rng, depth + 1)})"
    if roll < 0.78:
        return f"-{random_expression(rng, depth + 1)}"
    if roll < 0.88:
        parts = [random_expression(rng, depth + 1) for _ in range(3)]
        return f"({parts[0]} ? {parts[1]} : {parts[2]})"
    function = rng.choice(
        ["count", "exists", "string", "boolean", "not", "uppercase", "lowercase", "length"]
    )
    return f"${function}({random_expression(rng, depth + 1)})"


def test_random_expressions_over_random_data_agree() -> None:
    rng = random.Random(20261128)
    answered = total = 0
    for _ in range(300):
        expression = random_expression(rng)
        for _ in range(6):
            answered += check(expression, random_document(rng))
            total += 1
    assert answered > total // 4  # the closures answered a fair share themselves


# --- what is not compiled ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "(a; b)",
        "(a)[0]",
        "a[0]",
        "a[-1]",
        "a[x > 1].b",
        "a.b[x > 1][y]",
        "a[x > 1][0]",
        "$x",
        "$",
        "$$.a",
        "$.a",
        "a.*",
        "a.**",
        "a in [1, 2]",
        "[1, 2]",
        '{"a": 1}',
        "[1..3]",
        "$sum(a)",
        "$count(a, b)",
        "$string(a, true)",
        "$count()",
        "$uppercase",
        "function($x){ $x }",
        "$f := 1",
        "$eval('1')",
        "$now()",
        "a ~> $uppercase()",
        "a.b^(c)",
        "a{b: c}",
        "/ab/",
        "$match(a, /x/)",
        "a#$i",
        "a@$x",
        "a.%",
        "a[]",
        '"s"[0]',
        "1[true]",
    ],
)
def test_anything_else_is_not_compiled(expression: str) -> None:
    assert _native(expression) is None
    assert expressions._Program(expression).native is None


def test_a_deeply_nested_expression_is_not_compiled() -> None:
    assert _native(" + ".join(["a"] * 30)) is not None
    assert _native("-" * 100 + "a") is None  # the interpreter keeps its own depth bound


def test_the_bench_expressions_compile() -> None:
    for expression in [
        "trigger.body.order.total * 1.2",
        "$count(trigger.body.order.lines[qty > 1])",
        'trigger.body.amount > 100 and trigger.body.country = "DE"',
        "trigger.body.vip ? trigger.body.discount : 0",
        '$uppercase(trigger.body.name) & " " & trigger.body.city',
    ]:
        assert expressions._Program(expression).native is not None


# --- bounds still hold ---------------------------------------------------------------------------


def test_compiled_results_respect_the_output_limit() -> None:
    small = ExpressionLimits(max_output_bytes=1_000)
    scope = {"items": [{"n": 2, "text": "y" * 100} for _ in range(50)], "s": "x" * 600}
    assert expressions._Program("items[n > 1]").native is not None
    with pytest.raises(LimitExceeded, match="the limit is 1,000"):
        evaluate("items[n > 1]", scope, small)
    with pytest.raises(LimitExceeded, match="the limit is 1,000"):
        evaluate("s & s", scope, small)
    assert evaluate("$count(items[n > 1])", scope, small) == 50


def test_a_compiled_expression_works_after_the_time_bound_has_passed() -> None:
    """The Timebox trap, on the compiled path and on its fallback to the interpreter."""
    limits = ExpressionLimits(budget=1_000)
    expression = "a * 2 + $count(items[n > 1])"
    assert expressions._Program(expression).native is not None
    compiled = expressions.compile_value("{{ " + expression + " }}")
    native_scope = {"a": 2, "items": [{"n": 2}]}
    fallback_scope = {"a": 2, "items": [{"n": 2}, 5]}  # a non-object item: interpreter
    for _ in range(2):
        assert compiled.render(native_scope, limits) == 5
        assert compiled.render(fallback_scope, limits) == 5
        time.sleep(0.15)


def test_errors_after_a_fallback_name_the_expression() -> None:
    with pytest.raises(FlowError) as caught:
        evaluate("a + 1", {"a": "text"}, LIMITS)
    assert caught.value.message.startswith('Expression "a + 1" failed:')
    assert "must evaluate to a number" in caught.value.message
