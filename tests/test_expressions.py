"""Templates and JSONata expressions: types, fast path, bounds, errors, what they can see."""

from __future__ import annotations

import itertools
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jsonata
import pytest

from runtime import expressions
from runtime.errors import ExpressionError, FlowError, LimitExceeded
from runtime.expressions import (
    ExpressionLimits,
    compile_value,
    evaluate,
    is_template,
    render,
    step_references,
)

LIMITS = ExpressionLimits()
SAFETY_SECONDS = 5.0  # a bound that does not hold takes far longer; this is not a perf threshold


def make_scope() -> dict[str, Any]:
    return {
        "trigger": {
            "headers": {"content-type": "application/json"},
            "query": {"page": "2"},
            "method": "POST",
            "raw_body": '{"id": 42}',
            "body": {
                "id": 42,
                "amount": 12.5,
                "count": 3.0,
                "customer": {"name": "Ada", "email": "ada@example.org", "vip": True},
                "items": [
                    {"name": "bolt", "price": 4},
                    {"name": "gear", "price": 25},
                    {"name": "shaft", "price": 11.5},
                ],
                "tags": ["new", "priority"],
                "note": None,
                "empty": [],
                "nested": [[1, 2], [3]],
            },
        },
        "steps": {"fetch": {"output": {"name": "Widget", "items": [{"id": "w1"}, {"id": "w2"}]}}},
        "config": {"base_url": "https://api.example.org", "threshold": 10},
        "instance": {"id": "inst-1"},
        "loop": {"item": {"sku": "A-1"}, "index": 0},
        "flow": {"id": "sync"},
    }


def r(value: Any, limits: ExpressionLimits = LIMITS) -> Any:
    return render(value, make_scope(), limits)


# --- native types and text -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ trigger.body.tags }}", ["new", "priority"]),
        ("{{ trigger.body.amount * 2 }}", 25),
        ("{{ trigger.body.amount }}", 12.5),
        ("{{ trigger.body.customer }}", {"name": "Ada", "email": "ada@example.org", "vip": True}),
        ("{{ trigger.body.customer.vip }}", True),
        ("{{ trigger.body.note }}", None),
        ("{{ trigger.body.missing }}", None),
        ("  {{ trigger.body.id }}\n", 42),
        ('{{ {"a": {"b": [1, 2]}} }}', {"a": {"b": [1, 2]}}),
        ("{{ [1..3] }}", [1, 2, 3]),
        ("{{ $count(trigger.body.items) }}", 3),
    ],
)
def test_a_lone_template_keeps_the_native_type(template: str, expected: Any) -> None:
    result = r(template)
    assert result == expected
    assert type(result) is type(expected)


def test_results_are_plain_json_values_with_integral_numbers_as_ints() -> None:
    result = r("{{ trigger.body.items.price }}")
    assert type(result) is list  # not jsonata-python's JList
    assert result == [4, 25, 11.5]
    assert type(r("{{ trigger.body.count }}")) is int  # 3.0 read from the data
    assert type(r("{{ 10 / 4 }}")) is float
    assert json.dumps(r("{{ [1..4] }}")) == "[1, 2, 3, 4]"


def test_mixed_text_becomes_a_string() -> None:
    template = (
        "Order {{ trigger.body.id }} for {{ trigger.body.customer.name }} ({{ config.base_url }})"
    )
    assert r(template) == "Order 42 for Ada (https://api.example.org)"


def test_mixed_text_renders_non_string_values_compactly() -> None:
    template = (
        "obj={{ trigger.body.customer }} list={{ trigger.body.tags }}"
        " none=[{{ trigger.body.note }}] yes={{ trigger.body.customer.vip }} no={{ false }}"
        " n={{ trigger.body.count }} x={{ trigger.body.amount }} sum={{ 1 + 2 }}"
    )
    assert r(template) == (
        'obj={"name":"Ada","email":"ada@example.org","vip":true} list=["new","priority"] none=[]'
        " yes=true no=false n=3 x=12.5 sum=3"
    )


def test_two_templates_side_by_side_make_text() -> None:
    assert r("{{ trigger.body.id }}{{ trigger.body.id }}") == "4242"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("trigger.body.items[price > 10].name", ["gear", "shaft"]),
        ("trigger.body.items[0].name", "bolt"),
        ("steps.fetch.output.items[0].id", "w1"),
        ("trigger.body.amount * 2 + config.threshold", 35),
        ("$uppercase(trigger.body.customer.name)", "ADA"),
        ("$join(trigger.body.tags, ', ')", "new, priority"),
        ("$sum(trigger.body.items.price)", 40.5),
        ("trigger.body.amount > config.threshold ? 'big' : 'small'", "big"),
        ("trigger.body.customer.vip and trigger.method = 'POST'", True),
        ("loop.item.sku & '#' & $string(loop.index)", "A-1#0"),
        ("$keys(trigger.body.customer)", ["name", "email", "vip"]),
    ],
)
def test_jsonata_features(expression: str, expected: Any) -> None:
    assert evaluate(expression, make_scope(), LIMITS) == expected
    assert r("{{ " + expression + " }}") == expected


def test_now_and_millis_read_the_clock_at_each_evaluation() -> None:
    millis = compile_value("{{ $millis() }}")
    millis.render({}, LIMITS)
    compile_value("{{ 'another expression, compiled later' & trigger.x }}")
    time.sleep(0.2)
    before = time.time() * 1000 - 1
    value = millis.render({}, LIMITS)
    after = time.time() * 1000 + 1
    # jsonata-python reads the clock of the last *constructed* expression: stale by 200 ms.
    assert before <= value <= after
    now = evaluate("$now()", {}, LIMITS)
    assert isinstance(now, str)
    assert now.startswith(time.strftime("%Y-", time.gmtime()))


def test_bindings_do_not_survive_an_evaluation() -> None:
    compiled = compile_value("{{ $seen := ($exists($seen) ? $seen + 1 : 1) }}")
    assert [compiled.render({}, LIMITS) for _ in range(3)] == [1, 1, 1]


# --- static values and compile_value -----------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["plain text", "", "{ not a template }", 3, 2.0, True, None, ["a", 1], {"k": "v"}]
)
def test_static_values_come_back_unchanged(value: Any) -> None:
    compiled = compile_value(value)
    assert compiled.static
    assert compiled.references == frozenset()
    result = compiled.render(make_scope(), LIMITS)
    assert result is value or result == value
    assert type(result) is type(value)
    assert not is_template(value)


def test_a_static_structure_renders_to_itself() -> None:
    value = {"url": "https://x", "headers": {"a": "b"}, "list": [1, {"deep": "text"}]}
    compiled = compile_value(value)
    assert compiled.static
    assert compiled.render(make_scope(), LIMITS) is value


def test_compile_value_on_a_nested_structure() -> None:
    value = {
        "url": "{{ config.base_url }}/orders/{{ trigger.body.id }}",
        "method": "POST",
        "body": {
            "lines": ["{{ steps.fetch.output.items }}", "fixed", {"q": "{{ trigger.query.page }}"}],
            "total": "{{ $sum(trigger.body.items.price) }}",
        },
        "retries": 3,
    }
    compiled = compile_value(value)
    assert not compiled.static
    assert compiled.references == {"fetch"}
    rendered = compiled.render(make_scope(), LIMITS)
    assert rendered == {
        "url": "https://api.example.org/orders/42",
        "method": "POST",
        "body": {
            "lines": [[{"id": "w1"}, {"id": "w2"}], "fixed", {"q": "2"}],
            "total": 40.5,
        },
        "retries": 3,
    }
    assert list(rendered) == list(value)  # key order kept
    assert value["url"] == "{{ config.base_url }}/orders/{{ trigger.body.id }}"  # not mutated


def test_is_template() -> None:
    assert is_template("{{ a }}")
    assert is_template("x {{ a }} y")
    assert not is_template("a } b")
    assert not is_template({"k": "{{ a }}"})


def test_compiled_templates_are_cached_by_string() -> None:
    assert compile_value("{{ trigger.body.id }}") is compile_value("{{ trigger.body.id }}")


# --- the fast path -----------------------------------------------------------------------------

FAST_PATH_TABLE = [
    "trigger",
    "trigger.body.id",
    "trigger.body.amount",
    "trigger.body.count",
    "trigger.body.customer",
    "trigger.body.customer.name",
    "trigger.body.note",
    "trigger.body.note.deeper",
    "trigger.body.missing",
    "trigger.body.missing.deeper",
    "nothing.at.all",
    "trigger.body.id.deeper",
    "trigger.method.length",
    "trigger.body.tags",
    "trigger.body.empty",
    "trigger.body.nested",
    "trigger.body.items",
    "trigger.body.items.name",
    "trigger.body.items.price",
    "trigger.body.items.missing",
    "trigger.body.nested.x",
    "steps.fetch.output.items.id",
    "steps.fetch.output.name",
    "loop.item",
    "loop.index",
]


def _plain_jsonata(expression: str, scope: dict[str, Any]) -> Any:
    result = jsonata.Jsonata(expression).evaluate(scope, {})
    return json.loads(json.dumps(result))  # JList -> list, for comparison


@pytest.mark.parametrize("path", FAST_PATH_TABLE)
def test_fast_path_matches_jsonata(path: str) -> None:
    scope = make_scope()
    expected = _plain_jsonata(path, scope)
    assert expressions._fast_path(path) is not None
    assert evaluate(path, scope, LIMITS) == expected
    # The same path written so that it cannot take the fast path:
    assert expressions._fast_path(f"({path})") is None
    assert evaluate(f"({path})", scope, LIMITS) == expected


def test_fast_path_is_not_used_for_keywords_and_non_paths() -> None:
    for text in ["a.and", "trigger.true", "$x", "a.b[0]", "a. b", "`a b`.c", "a.b.", "1a"]:
        assert expressions._fast_path(text) is None


# --- bounds ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "stopped_by"),
    [
        ("($f := function($n){ $n * $f($n + 1) }; $f(1))", "recursed deeper than 150 levels"),
        # A call in tail position does not nest (jsonata-python reuses the frame): an endless
        # loop, which the budget stops. The depth bound must not be blamed for it.
        ("($f := function($x){ $f($x + 1) }; $f(0))", "did too much work"),
        # Shadowing jsonata-python's own Timebox callbacks switches its bound off; ours holds.
        (
            "($__evaluate_entry := $nothing; $__evaluate_exit := $nothing;"
            " $f := function($x){ $f($x + 1) }; $f(0))",
            "did too much work",
        ),
        ("$eval('($f := function($n){ $n * $f($n + 1) }; $f(1))')", "recursed deeper than 150"),
    ],
)
def test_endless_recursion_is_stopped(expression: str, stopped_by: str) -> None:
    start = time.monotonic()
    with pytest.raises(LimitExceeded) as caught:
        evaluate(expression, {}, LIMITS)
    assert time.monotonic() - start < SAFETY_SECONDS
    assert isinstance(caught.value, FlowError)
    assert stopped_by in caught.value.message
    assert expression[:30] in caught.value.message


def test_the_depth_bound_names_the_depth() -> None:
    factorial = "($f := function($n){ $n <= 1 ? 1 : $n * $f($n - 1) }; $f(%d))"
    assert evaluate(factorial % 10, {}, LIMITS) == 3628800
    with pytest.raises(LimitExceeded, match="recursed deeper than 150 levels"):
        evaluate(factorial % 500, {}, LIMITS)


@pytest.mark.parametrize(
    ("count", "comparator"),
    [
        (200, "$a.v > $b.v or ($a.v = $b.v and $a.n > $b.n)"),  # failed the former 250 ms bound
        (2500, "$a.v > $b.v"),  # about 170,000 steps (a merge sort: n log n comparisons)
    ],
)
def test_a_sort_with_a_comparator_fits_the_default_budget(count: int, comparator: str) -> None:
    items = [{"n": i, "v": (i * 7919) % count} for i in range(count)]  # every v once
    expected = [item["n"] for item in sorted(items, key=lambda item: item["v"])]
    expression = "$sort(items, function($a, $b){ " + comparator + " }).n"
    assert evaluate(expression, {"items": items}, LIMITS) == expected


class _SlowMapping(dict[str, Any]):
    """A scope whose reads wait, as an evaluation does when another thread holds the GIL."""

    def get(self, key: str, default: Any = None) -> Any:
        time.sleep(0.3)
        return super().get(key, default)


def test_time_spent_waiting_is_not_work() -> None:
    scope = {"slow": _SlowMapping(s=" text ")}
    assert expressions._program("$trim(slow.s)").native is None  # the interpreter, guarded
    assert evaluate("$trim(slow.s)", scope, LIMITS) == "text"


RUNAWAY = (
    "$sum($map([1..100000], function($i){ $sum($map([1..100000], function($j){ $i * $j })) }))"
)


def test_a_runaway_loop_stops_with_the_budget_message() -> None:
    with pytest.raises(LimitExceeded) as caught:
        evaluate(RUNAWAY, {}, LIMITS)
    message, hint = caught.value.message, caught.value.hint
    assert message.startswith('Expression "$sum($map([1..100000]')
    assert message.endswith(
        "did too much work: more than 250,000 evaluation steps, its expression budget"
    )
    assert "recursed" not in message  # the depth bound was not hit: it must not be blamed
    assert "Raise expression_budget in the flow settings" in hint


def test_the_budget_counts_steps_of_each_evaluation_afresh() -> None:
    mapped = "$count($map([1..600], function($i){ $i * 2 }))"  # about 1,800 steps
    with pytest.raises(LimitExceeded, match="more than 1,000 evaluation steps"):
        evaluate(mapped, {}, ExpressionLimits(budget=1_000))
    limits = ExpressionLimits(budget=2_000)
    compiled = compile_value("{{ " + mapped + " }}")
    assert [compiled.render({}, limits) for _ in range(5)] == [600] * 5


def test_cpu_time_bounds_steps_that_each_do_a_lot(monkeypatch: pytest.MonkeyPatch) -> None:
    seconds = itertools.count()  # every read of the thread's CPU clock: one second more
    monkeypatch.setattr(time, "thread_time", lambda: float(next(seconds)))
    with pytest.raises(LimitExceeded) as caught:
        evaluate("$count($map([1..300], function($i){ $i * 2 }))", {}, LIMITS)
    assert caught.value.message.endswith(
        "did too much work: more than 5,000 ms of CPU time, what its expression budget of "
        "250,000 steps allows"
    )
    assert "Raise expression_budget in the flow settings" in caught.value.hint


def test_the_time_bound_is_rearmed_for_each_evaluation() -> None:
    """THE TIMEBOX TRAP: a bound set once at compile time fails every evaluation once it passed.

    jsonata-python's own time bound did; ours (steps and CPU time) starts afresh per evaluation.
    """
    limits = ExpressionLimits(budget=1_000)
    # Both run on the interpreter, not as compiled closures (runtime.jsonata_fast).
    assert expressions._program("$sum(trigger.body.items.price) + 0").native is None
    assert expressions._program("$trim(trigger.method)").native is None
    compiled = compile_value("{{ $sum(trigger.body.items.price) + 0 }}")
    assert compiled.render(make_scope(), limits) == 40.5
    time.sleep(0.15)
    assert compiled.render(make_scope(), limits) == 40.5
    assert evaluate("$trim(trigger.method)", make_scope(), limits) == "POST"
    time.sleep(0.15)
    assert evaluate("$trim(trigger.method)", make_scope(), limits) == "POST"


def test_a_huge_range_is_refused_quickly() -> None:
    for expression in ["[1..100000000]", "$sum([1..9999999])", "$count([0..100000])"]:
        start = time.monotonic()
        with pytest.raises(LimitExceeded, match="builds a range of"):
            evaluate(expression, {}, LIMITS)
        assert time.monotonic() - start < SAFETY_SECONDS
    assert evaluate("$count([1..100000])", {}, LIMITS) == 100_000


def test_huge_output_is_refused() -> None:
    small = ExpressionLimits(max_output_bytes=1_000)
    with pytest.raises(LimitExceeded, match=r"produced about [\d,]+ bytes; the limit is 1,000"):
        evaluate("[1..1000]", {}, small)
    with pytest.raises(LimitExceeded, match="the limit is 1,000"):
        evaluate("$pad('x', 5000)", {}, small)
    big = {"body": ["y" * 100] * 50}
    with pytest.raises(LimitExceeded):  # the fast path is bounded as well
        evaluate("body", big, small)
    with pytest.raises(LimitExceeded):
        render("items: {{ body[0] }} {{ body[1] }} {{ $string(body) }}", big, small)
    assert len(evaluate("$pad('x', 500)", {}, small)) == 500


def test_a_value_nested_too_deeply_is_refused() -> None:
    deep: dict[str, Any] = {}
    for _ in range(20_000):
        deep = {"a": deep}
    with pytest.raises(LimitExceeded, match="nested too deeply"):
        evaluate("x", {"x": deep}, LIMITS)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="budget"):
        ExpressionLimits(budget=0)


# --- errors ------------------------------------------------------------------------------------


def test_a_syntax_error_quotes_the_expression_and_says_what_is_wrong() -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_value({"url": "{{ trigger.body. }}"})
    message = caught.value.message
    assert message.startswith('Expression "trigger.body." does not compile:')
    assert "it ends too early" in message


def test_a_syntax_error_points_at_the_mistake_once_in_words() -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_value("{{ trigger.body.issue..title }}")
    error = caught.value
    assert error.message == (
        'Expression "trigger.body.issue..title" does not compile: two dots in a row: a path '
        'needs a name between its dots, e.g. "issue.title" (right after "trigger.body.issue")'
    )
    assert error.hint == "Fix the expression inside {{ }}."
    for jargon in ("S0201", "position"):
        assert jargon not in f"{error.message} {error.hint}"


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("a(b]", '")" was expected but "]" was found (right after "a(b")'),
        ("$foo(", '")" is missing at the end'),
        ("a ++ b", '"+" cannot start a value here (right after "a +")'),
        ("a b", '"b" cannot follow what comes before it (right after "a")'),
    ],
)
def test_syntax_errors_in_words(expression: str, words: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_value("{{ " + expression + " }}")
    assert caught.value.message.endswith(f"does not compile: {words}")


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ("{{ }}", "is empty"),
        ("Total: {{ trigger.body.id", "without a matching"),
        ("{{ trigger.body[ }}", "does not compile"),
        ("{{ $notAFunction(1) }}", "failed: Attempted to invoke a non-function"),
    ],
)
def test_bad_templates_raise_expression_errors(template: str, fragment: str) -> None:
    with pytest.raises(ExpressionError, match=fragment):
        r(template)


def test_evaluation_errors_quote_the_expression() -> None:
    with pytest.raises(ExpressionError) as caught:
        evaluate('"a" + 1', {}, LIMITS)
    assert caught.value.message.startswith('Expression ""a" + 1" failed:')
    assert "must evaluate to a number" in caught.value.message
    with pytest.raises(ExpressionError, match="evaluates to a function"):
        evaluate("$uppercase", {}, LIMITS)


# --- step references ---------------------------------------------------------------------------


def test_step_references_inside_nested_templates() -> None:
    value = {
        "a": "{{ steps.a.output.id }} and steps.outside is just text",
        "list": [1, {"deep": "x {{ $sum(steps.b.output.items.price) }} y"}, "steps.c.output"],
        "str": '{{ "steps.d in a string" & $.steps.e.output & trigger.steps.f }}',
        "quoted": "{{ steps.`g`.output }}",
    }
    assert step_references(value) == {"a", "b", "e", "g"}
    assert compile_value(value).references == {"a", "b", "e", "g"}
    assert step_references("steps.a but no braces") == frozenset()
    assert step_references("{{ steps.a.output") == {"a"}  # unclosed: still reported


# --- nothing outside the run context ------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "__class__",
        "trigger.__class__",
        "trigger.body.__dict__",
        "trigger.__init__.__globals__",
        "$lookup(trigger, '__class__')",
        "trigger.body.tags.__len__",
        "$__evaluate_entry",
        "$sys",
        "$eval('__import__')",
    ],
)
def test_python_internals_are_not_reachable(expression: str) -> None:
    assert evaluate(expression, make_scope(), LIMITS) is None


@pytest.mark.parametrize(
    "expression", ["$__evaluate_entry(1, 2, 3)", "$eval(\"__import__('os')\")", "$open('x')"]
)
def test_python_cannot_be_called(expression: str) -> None:
    with pytest.raises(ExpressionError):
        evaluate(expression, make_scope(), LIMITS)


def test_expressions_only_see_json_data() -> None:
    scope = make_scope()
    compact = json.dumps(scope["trigger"], separators=(",", ":"))
    assert json.loads(evaluate("$string(trigger)", scope, LIMITS)) == json.loads(compact)
    assert evaluate("$", scope, LIMITS) == scope
    assert evaluate("$$", scope, LIMITS) == scope
    assert evaluate("$eval('$string($)')", scope, LIMITS) == evaluate("$string($)", scope, LIMITS)
    assert evaluate("$keys($)", scope, LIMITS) == list(scope)
    assert evaluate("$type(trigger)", scope, LIMITS) == "object"


def test_a_non_json_value_in_the_scope_is_refused() -> None:
    class Secret:
        token = "s3cr3t"

    scope = {"trigger": {"body": Secret()}}
    assert evaluate("trigger.body.token", scope, LIMITS) is None
    with pytest.raises(ExpressionError, match="not JSON"):
        evaluate("trigger.body", scope, LIMITS)


# --- threads and the public surface --------------------------------------------------------------


def test_one_compiled_expression_from_many_threads() -> None:
    compiled = compile_value("{{ $string(trigger.body.n * 2) & '-' & $string($millis() > 0) }}")
    barrier = threading.Barrier(8)

    def work(n: int) -> list[str]:
        barrier.wait()
        return [compiled.render({"trigger": {"body": {"n": n}}}, LIMITS) for _ in range(200)]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(8)))
    for n, got in enumerate(results):
        assert set(got) == {f"{n * 2}-true"}


def test_public_surface() -> None:
    assert sorted(expressions.__all__) == [
        "Compiled",
        "ExpressionLimits",
        "compile_value",
        "evaluate",
        "is_template",
        "render",
        "step_references",
    ]
