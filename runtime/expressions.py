"""Templates and JSONata expressions: compiled once, evaluated under bounds, JSON in and JSON out.

A step input is a literal JSON value or a template. A string holding `{{ ... }}` is a template; each
pair of braces holds one JSONata expression, evaluated with the scope as the input document::

    {"trigger": {...}, "steps": {"<id>": {"output": ...}}, "config": {...}, "instance": {...},
     "loop": {"item": ..., "index": ...}, "flow": {...}}

so `{{ trigger.body.amount * 2 }}` and `{{ steps.fetch.output.items[0].id }}` read the run.

Contract:

- A string that is exactly one `{{ expr }}` (whitespace around it allowed) keeps the result's type
  (list, number, object, bool, None). Mixed text becomes a string: objects and lists as compact
  JSON, None as "", booleans as `true`/`false`, integral numbers without `.0`. A string without
  `{{` is static. Dict keys are literal; dicts and lists are compiled recursively, and a fully
  static value renders to the very same object (callers must not mutate what `render` returns).
- Results are copied into plain JSON values (jsonata-python's list subclasses become `list`). An
  integral float in a result becomes an `int` (`2.0` -> `2`, within +-2**53), whether JSONata
  computed it or read it from the scope, so both evaluation paths agree. Literal values outside
  `{{ }}` are returned untouched.
- Plain dotted paths (`trigger.body.id`) are read with dict lookups, and common expressions
  (arithmetic, comparisons, `and`/`or`, `&`, `? :`, simple filters, a few functions) run as Python
  closures compiled from JSONata's parse tree (`runtime.jsonata_fast`); anything else, or data
  outside what those handle (a path that meets a list, a non-number in arithmetic, ...), is
  evaluated by JSONata itself. The results and errors are the same.
- Every evaluation is bounded by `ExpressionLimits` (`LimitExceeded` when a bound is hit): its
  work, as a budget of evaluation steps (each node JSONata evaluates is one) with CPU time of the
  evaluating thread in proportion; its nesting depth; and the approximate JSON size of its
  result. Work is counted rather than wall time, so an expression does not fail because the
  machine is busy or its thread waits; a run takes the budget from its flow's
  `expression_budget` setting. A range (`[1..n]`) may hold at most
  `runtime.jsonata_engine.RANGE_LIMIT` items, and regular expressions match in linear time
  (RE2). A bad expression raises `ExpressionError` quoting it.
- The scope must hold only JSON values (dict, list, str, int, float, bool, None). JSONata reads it
  with dict and list lookups only, never Python attributes; nothing else is bound, so an
  expression sees the run context and JSONata's built-in functions, and nothing more.
- Thread-safe: each compiled expression is evaluated by one thread at a time.

Hard-won details about jsonata-python 0.7.1 (see design.md, "Known pitfalls > Expressions"):

- Its `Timebox` clock starts when created and never resets, and it lives in the environment,
  where `($__evaluate_entry := $nothing; ...)` shadows it and switches the bound off. We do not
  use it: `jsonata_engine.Engine._eval` checks a fresh `Guard` per evaluation instead.
- `$now()`/`$millis()` read the thread's "current" instance (the one constructed last), not the
  one being evaluated, so a cached expression returned a stale time. We set it before each run.
- `evaluate(input)` without bindings binds top-level `$x := ...` into the compiled object's own
  environment, leaking state between evaluations: we always pass a fresh frame.
- Its input validation walks the whole input on every evaluation (5.5 ms for a 44 KB scope), so
  it is off; our result conversion rejects anything that is not JSON instead.
- Built-in functions run to completion between bound checks (a call is one step); signature
  checks cost ~6 us per array item, so `$sum([1..9999999])` (allowed: its range limit is 1e7) ran
  15 s. Hence `RANGE_LIMIT`. A single call on huge scope data, or a built-in function passed as a
  value (`$reduce([1..100000], $append)` appends without any step between), is still checked
  only when it returns.
- Its regexes use Python's `re`, which backtracks: `/^(a+)+$/` on 30 `a`s and a `!` ran 100 s.
  `parse` hands it RE2 instead (`runtime.jsonata_regex`), so every match is linear in the text,
  and a pattern RE2 cannot run (a backreference, lookaround) fails when the template compiles.
- Importing it sets `sys.setrecursionlimit(10000)` for the whole process.
"""

from __future__ import annotations

import functools
import json
import math
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jsonata
from jsonata import parser, utils

from runtime.errors import ExpressionError, LimitExceeded
from runtime.jsonata_engine import Guard, jsonata_message, parse
from runtime.jsonata_fast import Fallback, compile_ast
from runtime.model import EXPRESSION_BUDGET
from runtime.templates import Hole, quote, references_in, split

__all__ = [
    "Compiled",
    "ExpressionLimits",
    "compile_value",
    "evaluate",
    "is_template",
    "render",
    "step_references",
]

_CACHE_SIZE = 4096
_SAFE_INTEGER = 2**53
_KEYWORDS = frozenset({"and", "or", "in", "true", "false", "null", "function"})
_PATH = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*", re.ASCII)


@dataclass(frozen=True, slots=True)
class ExpressionLimits:
    """Bounds on one evaluation: work, evaluation depth and approximate result size.

    `budget` is the evaluation steps one evaluation may take (the flow setting
    `expression_budget`; see `runtime.jsonata_engine.Guard` for what a step is and the CPU time
    that goes with it).
    """

    budget: int = EXPRESSION_BUDGET
    max_depth: int = 150
    max_output_bytes: int = 1_048_576

    def __post_init__(self) -> None:
        for name in ("budget", "max_depth", "max_output_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ExpressionLimits.{name} must be positive")


# --- errors ------------------------------------------------------------------------------------


def _evaluation_error(expression: str, exc: BaseException) -> ExpressionError:
    return ExpressionError(
        f"Expression {quote(expression)} failed: {jsonata_message(exc)}",
        hint="Preview it against a test payload to check the values it reads.",
    )


def _caused_by_recursion(exc: BaseException | None) -> bool:
    # JSONata rewraps errors (`and`/`or`, `$eval`), so a RecursionError may sit in the chain.
    seen = 0
    while exc is not None and seen < 20:
        if isinstance(exc, RecursionError):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


# --- results -----------------------------------------------------------------------------------


class _Output:
    """Copies a result into plain JSON values, estimating its JSON size as it goes.

    The walk stops as soon as the estimate passes the limit, so a huge result costs no more than
    the limit to refuse. Strings, ints, booleans and None inside containers are handled inline:
    this walk runs over every `{{ trigger.body }}`, and a call per leaf tripled its cost.
    """

    __slots__ = ("expression", "limit", "size")

    def __init__(self, expression: str, limit: int) -> None:
        self.expression = expression
        self.limit = limit
        self.size = 0

    def convert(self, value: Any) -> Any:
        if type(value) is dict:
            return self.convert_dict(value)
        if isinstance(value, list | tuple):  # jsonata-python's JList and RangeList included
            return self.convert_list(value)
        if isinstance(value, dict):
            return self.convert_dict(value)
        value, size = self.convert_scalar(value)
        self.size += size
        self.check(self.size)
        return value

    def convert_scalar(self, value: Any) -> tuple[Any, int]:
        if value is None or value is utils.Utils.NULL_VALUE:
            return None, 4
        if isinstance(value, bool):
            return bool(value), 5
        if isinstance(value, str):
            return str(value), len(value) + 2
        if isinstance(value, int):
            return int(value), value.bit_length() // 3 + 1
        if isinstance(value, float):
            integral = value.is_integer() and abs(value) <= _SAFE_INTEGER
            return (int(value) if integral else float(value)), 12
        raise self.not_json(value)

    def convert_list(self, items: list[Any] | tuple[Any, ...]) -> list[Any]:
        out: list[Any] = []
        size = self.size + 2
        for item in items:
            kind = type(item)
            if kind is str:
                size += len(item) + 3
            elif kind is int or kind is bool or item is None:
                size += 6
            else:
                self.size = size
                item = self.convert(item)
                size = self.size + 1
            out.append(item)
            if size > self.limit:
                self.check(size)
        self.size = size
        return out

    def convert_dict(self, value: dict[Any, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        size = self.size + 2
        for key, item in value.items():
            if type(key) is not str:
                raise self.not_json(key)
            kind = type(item)
            if kind is str:
                size += len(key) + len(item) + 6
            elif kind is int or kind is bool or item is None:
                size += len(key) + 9
            else:
                self.size = size + len(key) + 4
                item = self.convert(item)
                size = self.size
            out[key] = item
            if size > self.limit:
                self.check(size)
        self.size = size
        return out

    def check(self, size: int) -> None:
        if size > self.limit:
            raise LimitExceeded(
                f"Expression {quote(self.expression)} produced about {size:,} bytes; "
                f"the limit is {self.limit:,}",
                hint="Select only the fields the step needs, or filter the list first.",
            )

    def not_json(self, value: Any) -> ExpressionError:
        if isinstance(value, jsonata.Jsonata.JFunctionCallable | parser.Parser.Symbol):
            return ExpressionError(
                f"Expression {quote(self.expression)} evaluates to a function, not a value",
                hint="Call the function, e.g. $uppercase(x) instead of $uppercase.",
            )
        return ExpressionError(
            f"Expression {quote(self.expression)} read a value that is not JSON "
            f"({type(value).__name__})",
            hint="Steps must output JSON values only: objects, lists, text, numbers, booleans.",
        )


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value) if math.isfinite(value) else str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# --- compiled expressions ----------------------------------------------------------------------


def _fast_path(expression: str) -> tuple[str, ...] | None:
    if not _PATH.fullmatch(expression):
        return None
    names = tuple(expression.split("."))
    return None if _KEYWORDS.intersection(names) else names


_MISSING = object()


def _lookup(document: dict[str, Any], path: tuple[str, ...]) -> Any:
    """Read `path` with dict lookups: None when missing, `_MISSING` when JSONata must decide.

    JSONata maps a path over a list it meets on the way; that is left to JSONata itself.
    """
    value: Any = document
    for name in path:
        if isinstance(value, dict):
            value = value.get(name)
        elif isinstance(value, list):
            return _MISSING
        else:
            return None  # a missing value or a scalar has no fields: JSONata gives undefined
    return value


# Measured with timeit on the 2-core dev box (Python 3.11, 44 KB scope, best of 5, noisy):
#   `{{ trigger.body.id }}`, fast path                          ~0.9 us per evaluation
#   `{{ (trigger.body.id) }}` on JSONata with our Guard         ~20 us (unbounded ~16 us;
#     (before jsonata_fast compiled it)                          library Timebox re-armed ~26 us)
#   `total * 1.2`, `$count(lines[qty > 1])`, `a > 100 and b = "DE"`, `$uppercase(x) & " " & y`
#     JSONata with our Guard: 28, 63, 45, 48 us; compiled closures (jsonata_fast): 1.5-2.4 us
#   `$sum(trigger.body.items[price > 600].price)`, 500 items   7-9 ms, guarded or not (noise)
#   jsonata-python's input validation, were it on              +5-8 ms per evaluation
#   `{{ trigger.body }}` (copy + size walk of 44 KB)            ~1.2-1.9 ms (json.dumps: ~0.7 ms)
#   compiling one expression                                    30-230 us, hence the cache
#   a compiled static structure                                 ~0.05 us; `render(value)` of a
#                                                                40-leaf dict (compile walk) ~24 us


class _Program:
    """One expression: its fast path (if it is a plain path) and its lazily parsed JSONata."""

    __slots__ = ("_engine", "_lock", "native", "path", "references", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.path = _fast_path(text)
        self.references = references_in(text)
        self._lock = threading.Lock()
        self._engine = None if self.path is not None else parse(text)
        self.native = None if self._engine is None else compile_ast(self._engine.ast)

    def evaluate(self, document: dict[str, Any], limits: ExpressionLimits) -> Any:
        if self.path is not None:
            raw = _lookup(document, self.path)
        elif self.native is not None:
            try:
                raw = self.native(document)
            except Fallback:  # the data left the compiled subset: the interpreter decides
                raw = _MISSING
        else:
            raw = _MISSING
        if raw is _MISSING:
            raw = self._run(document, limits)
        try:
            return _Output(self.text, limits.max_output_bytes).convert(raw)
        except RecursionError:
            raise LimitExceeded(
                f"Expression {quote(self.text)} produced a value nested too deeply",
                hint="Select a part of the value that is less deeply nested.",
            ) from None

    def _run(self, document: dict[str, Any], limits: ExpressionLimits) -> Any:
        current = jsonata.Jsonata.CURRENT
        with self._lock:
            previous = getattr(current, "jsonata", None)
            if self._engine is None:
                self._engine = parse(self.text)
            engine = self._engine
            guard = engine.guard = Guard(limits)
            current.jsonata = engine  # so $now()/$millis() and every dispatch use this engine
            try:
                # A fresh frame per run: top-level `$x := ...` must not outlive the evaluation.
                result = engine.evaluate(document, {})
                guard.check_cpu(self.text)  # the last built-in call may have run long
            except Exception as exc:
                raise self._failure(guard, exc) from exc
            finally:
                engine.guard = None
                if previous is None:
                    del current.jsonata
                else:
                    current.jsonata = previous
        if guard.violation is not None:
            raise guard.violation
        return result

    def _failure(self, guard: Guard, exc: Exception) -> Exception:
        if guard.violation is not None:
            return guard.violation
        if _caused_by_recursion(exc):
            return LimitExceeded(
                f"Expression {quote(self.text)} recursed deeper than Python allows",
                hint="Look for a function that calls itself without stopping.",
            )
        return _evaluation_error(self.text, exc)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _program(expression: str) -> _Program:
    if not expression:
        raise ExpressionError(
            "Expression {{ }} is empty", hint="Write an expression between the braces."
        )
    return _Program(expression)


def _document(scope: Mapping[str, Any]) -> dict[str, Any]:
    return scope if isinstance(scope, dict) else dict(scope)


class Compiled(ABC):
    """A compiled input value. `render` evaluates its templates against a scope.

    `static` is True when the value holds no template (it then renders to itself); `references`
    are the step ids read as `steps.<id>` anywhere inside.
    """

    __slots__ = ("references", "static")

    def __init__(self, *, static: bool = True, references: frozenset[str] = frozenset()) -> None:
        self.static = static
        self.references = references

    @abstractmethod
    def render(self, scope: Mapping[str, Any], limits: ExpressionLimits) -> Any:
        """The value with its templates evaluated against `scope`."""


class _Static(Compiled):
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        super().__init__(static=True)
        self.value = value

    def render(self, scope: Mapping[str, Any], limits: ExpressionLimits) -> Any:
        return self.value


class _Expression(Compiled):
    """A string that is exactly one `{{ expr }}`: renders to the expression's native value."""

    __slots__ = ("program",)

    def __init__(self, program: _Program) -> None:
        super().__init__(static=False, references=program.references)
        self.program = program

    def render(self, scope: Mapping[str, Any], limits: ExpressionLimits) -> Any:
        return self.program.evaluate(_document(scope), limits)


class _Text(Compiled):
    """Text with holes: renders to a string."""

    __slots__ = ("parts", "template")

    def __init__(self, template: str, parts: list[str | _Program]) -> None:
        refs = frozenset().union(*(p.references for p in parts if isinstance(p, _Program)))
        super().__init__(static=False, references=refs)
        self.template = template
        self.parts = parts

    def render(self, scope: Mapping[str, Any], limits: ExpressionLimits) -> str:
        document = _document(scope)
        text = "".join(
            part if isinstance(part, str) else _as_text(part.evaluate(document, limits))
            for part in self.parts
        )
        if len(text) > limits.max_output_bytes:
            raise LimitExceeded(
                f"Template {quote(self.template)} produced about {len(text):,} bytes; "
                f"the limit is {limits.max_output_bytes:,}",
                hint="Select only the fields the step needs, or filter the list first.",
            )
        return text


class _Container(Compiled):
    """A dict or list with templates inside: a copy with only the dynamic entries rendered."""

    __slots__ = ("dynamic", "value")

    def __init__(self, value: dict[Any, Any] | list[Any], dynamic: list[tuple[Any, Compiled]]):
        refs = frozenset().union(*(c.references for _, c in dynamic))
        super().__init__(static=False, references=refs)
        self.value = value
        self.dynamic = dynamic

    def render(self, scope: Mapping[str, Any], limits: ExpressionLimits) -> Any:
        document = _document(scope)
        out: Any = self.value.copy()
        for key, compiled in self.dynamic:
            out[key] = compiled.render(document, limits)
        return out


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _compile_template(text: str) -> Compiled:
    parts = split(text)
    holes = [p for p in parts if isinstance(p, Hole)]
    if len(holes) == 1 and all(isinstance(p, Hole) or not p.strip() for p in parts):
        return _Expression(_program(holes[0].expression))
    return _Text(text, [p if isinstance(p, str) else _program(p.expression) for p in parts])


# --- public functions --------------------------------------------------------------------------


def compile_value(value: Any) -> Compiled:
    """Compile a step input: dicts and lists recursively, template strings (cached by string).

    Raises `ExpressionError` for a template that does not compile.
    """
    if isinstance(value, str):
        return _compile_template(value) if "{{" in value else _Static(value)
    if isinstance(value, dict):
        entries: list[tuple[Any, Compiled]] = [(k, compile_value(v)) for k, v in value.items()]
    elif isinstance(value, list):
        entries = [(i, compile_value(v)) for i, v in enumerate(value)]
    else:
        return _Static(value)
    dynamic = [(key, compiled) for key, compiled in entries if not compiled.static]
    return _Container(value, dynamic) if dynamic else _Static(value)


def evaluate(expression: str, scope: Mapping[str, Any], limits: ExpressionLimits) -> Any:
    """Evaluate one bare JSONata expression (no braces), e.g. for previews and conditions."""
    return _program(expression.strip()).evaluate(_document(scope), limits)


def render(value: Any, scope: Mapping[str, Any], limits: ExpressionLimits) -> Any:
    """Compile `value` (templates are cached) and render it against `scope`."""
    return compile_value(value).render(scope, limits)


def is_template(value: Any) -> bool:
    """True for a string holding `{{`: it will be evaluated rather than used as it is."""
    return isinstance(value, str) and "{{" in value


def step_references(value: Any) -> frozenset[str]:
    """Step ids read as `steps.<id>` (or `$.steps.<id>`) in the templates inside `value`.

    Text outside `{{ }}` and string literals inside expressions are ignored. Works on templates
    that do not compile, so validation can report both problems.
    """
    if isinstance(value, str):
        if "{{" not in value:
            return frozenset()
        holes = (p for p in split(value, lenient=True) if isinstance(p, Hole))
        return frozenset().union(*(references_in(h.expression) for h in holes))
    if isinstance(value, dict):
        return frozenset().union(*(step_references(v) for v in value.values()))
    if isinstance(value, list):
        return frozenset().union(*(step_references(v) for v in value))
    return frozenset()
