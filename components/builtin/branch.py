"""Branch steps: send the flow down one of several ports.

`branch.value` compares one value with a list of cases (one port per case plus `else`);
`branch.expression` evaluates groups of conditions (ports `true` and `false`). Conditions are data
(left, operator, right) evaluated here, never by `eval`; their values arrive already resolved.

Equality (`==`, `!=`, value cases, list `contains`) is JSON equality with one loosening, so a
number typed in the designer matches the same number arriving as text in a query string:

- numbers compare numerically (`1 == 1.0`), and a number equals a string holding a decimal
  number (`5 == "5"`, `5 == " 5.0 "`); two strings always compare as text (`"1.0" != "1"`);
- booleans equal only booleans (`true != 1`, `true != "true"`), null only null;
- lists and objects are equal when their items are, by these same rules; text is case-sensitive.

Ordering (`<`, `<=`, `>`, `>=`) is numeric when both sides are numbers or numeric strings, text
order when both are other strings (so ISO dates order correctly), and an error otherwise.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from components.api import (
    Action,
    Component,
    Inputs,
    Pattern,
    PatternError,
    Result,
    StepConfigError,
    StepContext,
    compile_pattern,
)

__all__ = [
    "ELSE_PORT",
    "MAX_PATTERN_CHARS",
    "MAX_SUBJECT_CHARS",
    "BranchExpression",
    "BranchExpressionInputs",
    "BranchValue",
    "BranchValueInputs",
    "Case",
    "Condition",
    "ConditionGroup",
    "Operator",
    "component",
    "values_equal",
]

ELSE_PORT = "else"
MAX_PATTERN_CHARS = 500
MAX_SUBJECT_CHARS = 10_000

_NUMERIC = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")

Operator = Literal[
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "contains",
    "not contains",
    "starts with",
    "ends with",
    "exists",
    "not exists",
    "is empty",
    "is not empty",
    "matches",
]
Match = Literal["all", "any"]
_CONDITIONS_UI: dict[str, Any] = {"x-ui": "conditions"}


# -- comparison rules -----------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numeric(value: Any) -> int | float | None:
    """The number a value stands for: a number itself or a string holding a decimal number."""
    if _is_number(value):
        return value  # type: ignore[no-any-return]
    if isinstance(value, str):
        text = value.strip()
        if _NUMERIC.fullmatch(text):
            if _INTEGER.fullmatch(text):
                try:
                    return int(text)
                except ValueError:  # more digits than int() parses; float is close enough
                    pass
            return float(text)
    return None


def values_equal(left: Any, right: Any) -> bool:
    """JSON equality where numbers compare numerically and equal their numeric strings."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if _is_number(left) or _is_number(right):
        a, b = _numeric(left), _numeric(right)
        return a is not None and b is not None and a == b
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(values_equal, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(values_equal(left[k], right[k]) for k in left)
    if left is None or right is None:
        return left is None and right is None
    return type(left) is type(right) and bool(left == right)


def _show(value: Any) -> str:
    """A short rendering of a value for messages: text quoted, everything else as JSON."""
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:60] + "…")
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= 60 else text[:60] + "…"


# -- branch.value ---------------------------------------------------------------------------------


class Case(Inputs):
    """One case of a value branch: the port taken when the value equals `equals`."""

    port: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_ .-]*$",
        title="Port",
        description="Name of the output port for this case, e.g. `created`; letters, digits, "
        "spaces, `_`, `-` and `.`.",
    )
    equals: Any = Field(
        None,
        title="Equals",
        description='The value to match. Numbers also match their text form (5 matches "5").',
    )


class BranchValueInputs(Inputs):
    """The value to route on and the cases to compare it with."""

    value: Any = Field(
        title="Value",
        description="The value to compare, usually a template such as `{{ trigger.body.event }}`.",
    )
    cases: list[Case] = Field(
        default_factory=list,
        title="Cases",
        description="Checked in order; the first case equal to the value chooses the port. No "
        "match takes `else`.",
    )

    @field_validator("cases")
    @classmethod
    def _unique_ports(cls, cases: list[Case]) -> list[Case]:
        seen: set[str] = set()
        for case in cases:
            if case.port == ELSE_PORT:
                raise ValueError(f"a case cannot use the port name '{ELSE_PORT}'; it is built in")
            if case.port in seen:
                raise ValueError(f"port '{case.port}' is used by two cases; rename one")
            seen.add(case.port)
        return cases


class BranchValueOutput(BaseModel):
    value: Any = Field(description="The value that was compared.")
    matched: str = Field(description="The port taken: a case's port or `else`.")


class BranchValue(Action[BranchValueInputs]):
    key = "value"
    title = "Branch on value"
    description = (
        "Routes the flow by a value: one output port per case, and `else` when no case matches."
    )
    Inputs = BranchValueInputs
    Output = BranchValueOutput
    ports = (ELSE_PORT,)

    @classmethod
    def output_ports(cls, inputs: Mapping[str, Any]) -> tuple[str, ...]:
        """One port per well-formed case (in order, first of duplicates kept), then `else`."""
        cases = inputs.get("cases") if isinstance(inputs, Mapping) else None
        ports: list[str] = []
        if isinstance(cases, list):
            for case in cases:
                port = case.get("port") if isinstance(case, Mapping) else None
                if isinstance(port, str) and port and port != ELSE_PORT and port not in ports:
                    ports.append(port)
        return (*ports, ELSE_PORT)

    async def run(self, inputs: BranchValueInputs, ctx: StepContext) -> Result:
        port = next(
            (case.port for case in inputs.cases if values_equal(inputs.value, case.equals)),
            ELSE_PORT,
        )
        ctx.log.debug("value %s -> port '%s'", _show(inputs.value), port)
        return Result({"value": inputs.value, "matched": port}, port=port)


# -- branch.expression ----------------------------------------------------------------------------


class Condition(Inputs):
    """One comparison: `left operator right`."""

    model_config = ConfigDict(json_schema_extra=_CONDITIONS_UI)

    left: Any = Field(
        None,
        title="Value",
        description="The value to test, usually a template such as `{{ trigger.body.status }}`.",
    )
    operator: Operator = Field(
        "==",
        title="Operator",
        description="How to compare. `exists`, `not exists`, `is empty` and `is not empty` ignore "
        "the right side; `matches` takes a regular expression (RE2 syntax: like Python's, "
        "without backreferences or lookaround).",
    )
    right: Any = Field(None, title="Compare with", description="The value to compare with.")


class ConditionGroup(Inputs):
    """Conditions combined with all (and) or any (or)."""

    model_config = ConfigDict(json_schema_extra=_CONDITIONS_UI)

    match: Match = Field(
        "all",
        title="Match",
        description="`all`: every condition must hold; `any`: at least one.",
    )
    conditions: list[Condition] = Field(
        min_length=1, title="Conditions", description="The conditions of this group."
    )


class BranchExpressionInputs(Inputs):
    """Groups of conditions deciding between the `true` and `false` ports."""

    match: Match = Field(
        "all",
        title="Match groups",
        description="`all`: every group must hold; `any`: at least one.",
    )
    groups: list[ConditionGroup] = Field(
        min_length=1,
        title="Condition groups",
        description="Each group combines its conditions; the groups are then combined by "
        "`Match groups`.",
        json_schema_extra=_CONDITIONS_UI,
    )


class ConditionResult(BaseModel):
    group: int = Field(description="1-based group number.")
    condition: int = Field(description="1-based condition number within its group.")
    operator: str = Field(description="The operator evaluated.")
    result: bool = Field(description="Whether the condition held.")


class BranchExpressionOutput(BaseModel):
    result: bool = Field(description="The overall result; also the port taken.")
    conditions: list[ConditionResult] = Field(description="Every condition's own result.")


class BranchExpression(Action[BranchExpressionInputs]):
    key = "expression"
    title = "Branch on conditions"
    description = (
        "Tests groups of conditions (equals, greater than, contains, matches, ...) and continues "
        "on `true` or `false`."
    )
    Inputs = BranchExpressionInputs
    Output = BranchExpressionOutput
    ports = ("true", "false")

    async def run(self, inputs: BranchExpressionInputs, ctx: StepContext) -> Result:
        # Every condition is evaluated (no short-circuit), so the output shows all of them and a
        # misconfigured condition fails the same way whatever the data.
        results: list[dict[str, Any]] = []
        group_results: list[bool] = []
        for g, group in enumerate(inputs.groups, start=1):
            held: list[bool] = []
            for c, cond in enumerate(group.conditions, start=1):
                where = f"Condition {c} of group {g}"
                ok = evaluate(cond, where)
                held.append(ok)
                results.append(
                    {"group": g, "condition": c, "operator": cond.operator, "result": ok}
                )
            group_results.append(all(held) if group.match == "all" else any(held))
        result = all(group_results) if inputs.match == "all" else any(group_results)
        ctx.log.debug("conditions %s -> %s", [r["result"] for r in results], result)
        return Result({"result": result, "conditions": results}, port="true" if result else "false")


def evaluate(cond: Condition, where: str) -> bool:
    """Evaluate one condition; `where` ("Condition 2 of group 1") starts every error message."""
    op, left, right = cond.operator, cond.left, cond.right
    if op == "==":
        return values_equal(left, right)
    if op == "!=":
        return not values_equal(left, right)
    if op in ("<", "<=", ">", ">="):
        a, b = _ordered(left, right, where)
        if op == "<":
            return bool(a < b)
        if op == "<=":
            return bool(a <= b)
        if op == ">":
            return bool(a > b)
        return bool(a >= b)
    if op in ("contains", "not contains"):
        found = _contains(left, right, where)
        return found if op == "contains" else not found
    if op in ("starts with", "ends with"):
        if left is None:
            return False
        text, part = _text(left, where, "the value"), _text(right, where, "the text to look for")
        return text.startswith(part) if op == "starts with" else text.endswith(part)
    if op == "exists":
        return left is not None
    if op == "not exists":
        return left is None
    if op == "is empty":
        return _is_empty(left)
    if op == "is not empty":
        return not _is_empty(left)
    return _matches(left, right, where)


def _ordered(left: Any, right: Any, where: str) -> tuple[Any, Any]:
    a, b = _numeric(left), _numeric(right)
    if a is not None and b is not None:
        return a, b
    if isinstance(left, str) and isinstance(right, str):
        return left, right
    raise StepConfigError(
        f"{where}: cannot compare {_show(left)} with {_show(right)}.",
        hint="Order works between two numbers (or numeric texts) or between two texts.",
    )


def _text(value: Any, where: str, what: str) -> str:
    if isinstance(value, str):
        return value
    if _is_number(value):
        return str(value)
    raise StepConfigError(
        f"{where}: {what} must be text or a number, not {_show(value)}.",
        hint="Point the condition at a text field, or use `contains` for lists.",
    )


def _contains(left: Any, right: Any, where: str) -> bool:
    if left is None:
        return False
    if isinstance(left, str):
        return _text(right, where, "the text to look for") in left
    if isinstance(left, list):
        return any(values_equal(item, right) for item in left)
    if isinstance(left, dict):
        if not isinstance(right, str):
            raise StepConfigError(
                f"{where}: an object contains keys; {_show(right)} is not a key name.",
                hint="Compare with a key name to test whether the object has that key.",
            )
        return right in left
    raise StepConfigError(
        f"{where}: cannot check whether {_show(left)} contains {_show(right)}.",
        hint="`contains` works on text, lists and objects.",
    )


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | dict) and len(value) == 0)


def _matches(left: Any, right: Any, where: str) -> bool:
    if left is None:
        return False
    subject = _text(left, where, "the value")
    if not isinstance(right, str):
        raise StepConfigError(
            f"{where}: the pattern must be a regular expression as text, not {_show(right)}."
        )
    if len(right) > MAX_PATTERN_CHARS:
        raise StepConfigError(
            f"{where}: the pattern is longer than {MAX_PATTERN_CHARS} characters.",
            hint="Split it into several conditions.",
        )
    if len(subject) > MAX_SUBJECT_CHARS:
        raise StepConfigError(
            f"{where}: the value is longer than {MAX_SUBJECT_CHARS} characters, too long to match "
            "a pattern against.",
            hint="Match a shorter field, or extract the part you need first.",
        )
    try:
        compiled = _compile(right)
    except PatternError as exc:
        if exc.construct is not None:
            raise StepConfigError(
                f"{where}: the pattern {_show(right)} uses {exc.construct}, which RE2 cannot run.",
                hint="Rewrite it without that: patterns run with RE2, which matches in linear "
                "time and so has no backreferences or lookaround.",
            ) from None
        raise StepConfigError(
            f"{where}: {_show(right)} is not a valid regular expression ({exc.reason}).",
            hint="Patterns use RE2 syntax, like Python's, e.g. `^INV-[0-9]+$`.",
        ) from None
    return compiled.search(subject) is not None


@functools.lru_cache(maxsize=256)
def _compile(pattern: str) -> Pattern:
    return compile_pattern(pattern)


component = Component(
    key="branch",
    title="Branch",
    category="Logic",
    version="1.0.0",
    description="Route the flow by a value or by conditions.",
    actions=[BranchValue, BranchExpression],
)
