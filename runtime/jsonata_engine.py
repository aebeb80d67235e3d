"""jsonata-python 0.7.1 made bounded: a per-evaluation guard on work and depth, a range limit.

`parse(text)` compiles an expression, its regex literals with RE2 (`runtime.jsonata_regex`),
raising `ExpressionError` or `LimitExceeded`; before each evaluation set
`engine.guard = Guard(limits)` and make the engine the thread's current instance
(`runtime.expressions` does both). `Guard` bounds work (evaluation steps and CPU time), not wall
time. Why it is built this way: see `runtime/expressions.py`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import jsonata
from jsonata import jexception

from components.patterns import PatternError
from runtime.errors import ExpressionError, LimitExceeded
from runtime.jsonata_regex import compile_regex
from runtime.templates import quote

if TYPE_CHECKING:
    from runtime.expressions import ExpressionLimits

__all__ = ["RANGE_LIMIT", "Engine", "Guard", "jsonata_message", "parse"]

RANGE_LIMIT = 100_000
"""Most items a range `[a..b]` may hold (jsonata-python allows 1e7, which takes seconds)."""


def jsonata_message(exc: BaseException) -> str:
    """The JSONata error text with its code and position, e.g. `Unexpected ... at position 13`."""
    if not isinstance(exc, jexception.JException):
        return f"{type(exc).__name__}: {exc}"
    where = f" at position {exc.location}" if exc.location > 0 else ""
    return f"{exc} ({exc.error}){where}"


def _token(value: Any) -> str:
    return "" if value is None else str(value)


def _found(exc: jexception.JException) -> str:
    """The token JSONata stopped at (for "Expected X, got Y" it keeps X first)."""
    return _token(exc.expected if exc.error in ("S0202", "S0203") else exc.current)


def _syntax_words(exc: jexception.JException) -> str:
    """A syntax error in plain words: what is wrong, not JSONata's code."""
    token = _found(exc)
    expected = _token(exc.current)
    if exc.error == "S0201" and token == "..":
        return 'two dots in a row: a path needs a name between its dots, e.g. "issue.title"'
    words = {
        "S0101": "a text in quotes is not closed: add the closing quote",
        "S0105": "a name in `backquotes` is not closed: add the closing backquote",
        "S0106": "a comment is not closed: end it with */",
        "S0201": f'"{token}" cannot follow what comes before it',
        "S0202": f'"{expected}" was expected but "{token}" was found',
        "S0203": f'"{expected}" is missing at the end',
        "S0204": f'"{token}" is not an operator',
        "S0205": f'"{token}" is not expected here',
        "S0207": "it ends too early: something must follow the last operator or dot",
        "S0211": f'"{token}" cannot start a value here',
    }
    return words.get(exc.error) or str(exc)


def _pointer(expression: str, exc: jexception.JException) -> str:
    """Where the error is: the text before the offending token, once."""
    location = exc.location if isinstance(exc.location, int) else -1
    text = expression.strip()
    if location <= 0 or location > len(text) or exc.error in ("S0203", "S0207"):
        return ""
    start = max(0, location - len(_found(exc)))
    before = " ".join(text[:start].split())
    if not before:
        return " (at the start)"
    return f' (right after "{before if len(before) <= 40 else "..." + before[-37:]}")'


def _compile_error(expression: str, exc: BaseException) -> ExpressionError:
    if isinstance(exc, jexception.JException):
        problem = _syntax_words(exc) + _pointer(expression, exc)
    else:
        problem = jsonata_message(exc)
    return ExpressionError(
        f"Expression {quote(expression)} does not compile: {problem}",
        hint="Fix the expression inside {{ }}.",
    )


class Tripped(Exception):
    """Raised inside JSONata when a bound is hit; `Guard.violation` keeps the reason."""


CPU_SECONDS_PER_STEP = 20e-6
"""CPU time an evaluation may use per step of its budget: several times what an ordinary step
costs, so it stops only steps that each do a lot (a built-in over a large value), never a plain
runaway loop, which the step count stops first and the same on every machine."""

_CPU_EVERY = 64
"""Steps between two reads of the thread's CPU clock (a system call costing about as much as a
tenth of a step)."""

_BUDGET_HINT = (
    "Raise expression_budget in the flow settings, or make the expression do less: filter a "
    "list before sorting or mapping it, and check that a function that calls itself stops."
)


class Guard:
    """One evaluation's bounds, checked on every evaluation step (each node JSONata evaluates).

    Work is bounded, not wall time, so waiting (for the GIL, for a busy machine) never fails an
    expression: at most `limits.budget` steps, and at most `CPU_SECONDS_PER_STEP` per step of
    the budget in CPU time of this thread (read every `_CPU_EVERY` steps and at the end).
    Nesting deeper than `limits.max_depth` fails with its own message.
    """

    __slots__ = ("cpu_limit", "cpu_start", "depth", "limits", "steps", "violation")

    def __init__(self, limits: ExpressionLimits) -> None:
        self.limits = limits
        self.depth = 0
        self.steps = 0
        self.cpu_limit = limits.budget * CPU_SECONDS_PER_STEP
        self.cpu_start = time.thread_time()
        self.violation: LimitExceeded | None = None

    def trip(self, violation: LimitExceeded) -> Tripped:
        if self.violation is None:
            self.violation = violation
        return Tripped(violation.message)

    def enter(self, expression: str) -> None:
        self.depth += 1
        self.steps += 1
        if self.depth > self.limits.max_depth:
            raise self.trip(
                LimitExceeded(
                    f"Expression {quote(expression)} recursed deeper than "
                    f"{self.limits.max_depth} levels",
                    hint="Look for a function that calls itself without stopping, "
                    "or nest the expression less deeply.",
                )
            )
        if self.steps > self.limits.budget:
            raise self.trip(
                LimitExceeded(
                    f"Expression {quote(expression)} did too much work: more than "
                    f"{self.limits.budget:,} evaluation steps, its expression budget",
                    hint=_BUDGET_HINT,
                )
            )
        if not self.steps % _CPU_EVERY:
            self.check_cpu(expression)

    def check_cpu(self, expression: str) -> None:
        if time.thread_time() - self.cpu_start > self.cpu_limit:
            raise self.trip(
                LimitExceeded(
                    f"Expression {quote(expression)} did too much work: more than "
                    f"{self.cpu_limit * 1000:,.0f} ms of CPU time, what its expression budget "
                    f"of {self.limits.budget:,} steps allows",
                    hint=_BUDGET_HINT,
                )
            )


class Engine(jsonata.Jsonata):  # type: ignore[misc]  # jsonata is untyped
    """jsonata-python with our per-evaluation guard and a smaller range limit.

    Every node evaluation passes `Guard.enter`: one step of the budget and one level of depth.

    jsonata-python dispatches every node through `Jsonata.CURRENT.jsonata._eval`, so these
    overrides apply while this instance is the thread's current one (`_Program._run` sees to it).
    """

    source: str = ""
    guard: Guard | None = None

    def _eval(self, expr: Any, input: Any, environment: Any) -> Any:
        guard = self.guard
        if guard is None:
            return super()._eval(expr, input, environment)
        guard.enter(self.source)
        try:
            return super()._eval(expr, input, environment)
        finally:
            guard.depth -= 1

    def evaluate_range_expression(self, lhs: Any, rhs: Any) -> Any:
        sized = all(isinstance(v, int) and not isinstance(v, bool) for v in (lhs, rhs))
        if sized and rhs - lhs + 1 > RANGE_LIMIT and self.guard is not None:
            raise self.guard.trip(
                LimitExceeded(
                    f"Expression {quote(self.source)} builds a range of {rhs - lhs + 1:,} "
                    f"items; the limit is {RANGE_LIMIT:,}",
                    hint="Use a smaller range, or read the list from the data instead.",
                )
            )
        return super().evaluate_range_expression(lhs, rhs)


def _pattern_error(expression: str, exc: PatternError) -> ExpressionError:
    if exc.construct is not None:
        return ExpressionError(
            f"Expression {quote(expression)} uses a regular expression RE2 cannot run "
            f"({exc.construct})",
            hint="Rewrite the pattern without it: regular expressions run with RE2, which "
            "matches in linear time and so has no backreferences or lookaround.",
        )
    return ExpressionError(
        f"Expression {quote(expression)} has a regular expression that is not valid: {exc.reason}",
        hint="Fix the pattern between the slashes /.../.",
    )


def parse(expression: str) -> Engine:
    """Compile `expression` (regex literals with RE2); raises `ExpressionError`/`LimitExceeded`."""
    try:
        engine = Engine(expression, compile_regex)
    except RecursionError as exc:
        raise LimitExceeded(
            f"Expression {quote(expression)} is nested too deeply to compile",
            hint="Split it into smaller expressions.",
        ) from exc
    except PatternError as exc:
        raise _pattern_error(expression, exc) from None
    except Exception as exc:
        raise _compile_error(expression, exc) from None
    if engine.errors:
        raise _compile_error(expression, engine.errors[0])
    engine.source = expression
    engine.set_validate_input(False)
    return engine
