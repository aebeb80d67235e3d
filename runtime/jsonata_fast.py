"""Common JSONata expressions compiled into plain Python closures; the interpreter does the rest.

`compile_ast(jsonata.Jsonata(text).ast)` returns a `Native` closure, or None when the expression
uses anything outside the subset below. A closure takes the input document and returns exactly
the raw value jsonata-python 0.7.1 would return for it (the same ints, floats, `NULL_VALUE`s and
None for undefined), so the caller's result conversion treats both alike. When the *data* leaves
the subset (a path meets a list, an operand is not a plain number or string, a division by zero),
the closure raises `Fallback` and the caller evaluates the whole expression with the interpreter,
which then produces its own result or its own error. So a closure never raises a JSONata error.

The subset, each with the interpreter's semantics:

- parentheses around one expression; literals: numbers, strings, `true`, `false`, `null`;
- paths of plain names (`a.b.c`, backticks allowed) through objects only; the last step may
  carry one filter `[predicate]` over a list of objects (`lines[qty > 1]`), the predicate being
  itself in the subset and never a number (numbers are index lookups);
- `+ - * / %` and unary `-` on numbers; `= !=` and `< <= > >=` on two numbers or two strings
  (booleans too for `=`); `and`, `or`; `&` on strings, numbers and booleans; `? :`;
- `$count`, `$exists` (any value), `$string`, `$boolean`, `$not` (strings, numbers, booleans),
  `$uppercase`, `$lowercase`, `$length` (strings), each with one argument.

Closures are not recursive and touch each datum at most once (a filter evaluates its predicate
once per item), so they are not counted against the expression budget: their work is at most the
expression's size times the items of the data they read, like one built-in call (which the
interpreter counts as one step too), while the budget exists for loops and recursion (`$map`
with a function, `function($n){...}` calling itself), which the subset cannot express.

Library helpers (`convert_number`, `boolize`, `Functions.string`, ...) are called directly where
the interpreter calls them, so number formatting, case mapping and truthiness cannot drift.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from jsonata import functions, jsonata, utils

__all__ = ["Fallback", "Native", "compile_ast"]

Native = Callable[[Any], Any]
"""A compiled expression: the input document (or a filtered item) -> the raw JSONata result."""


class Fallback(Exception):
    """The data left the compiled subset: evaluate the whole expression with the interpreter."""


class _Unsupported(Exception):
    """The expression is outside the subset (raised while compiling only)."""


_MAX_DEPTH = 40
_NULL = utils.Utils.NULL_VALUE
_ABSENT = object()
_FUNCTIONS = functions.Functions
_boolize = jsonata.Jsonata.boolize
_convert_number = utils.Utils.convert_number
# Node attributes that never change what an expression means.
_INERT = frozenset({"_outer_instance", "bp", "lbp", "position", "id", "type", "value", "level"})


class _Matches(list[Any]):
    """Two or more items kept by a filter: a JSONata sequence, not a list read from the data."""


def _number(value: Any) -> bool:
    kind = type(value)
    return kind is int or (kind is float and math.isfinite(value))


def _truthy(value: Any) -> bool:
    if value is True or value is False:
        return value
    if isinstance(value, list):
        raise Fallback
    return bool(_boolize(value))


# --- compiling ----------------------------------------------------------------------------------


def compile_ast(ast: Any) -> Native | None:
    """The closure computing `ast` (a jsonata-python parse tree), or None if it is unsupported."""
    try:
        return _compile(ast, 0)
    except (_Unsupported, RecursionError):
        return None


def _plain(node: Any, *allowed: str) -> None:
    """Refuse a node that carries anything (predicate, group, focus, ...) beyond `allowed`."""
    for name, value in vars(node).items():
        if name in _INERT or name in allowed:
            continue
        if value is not None and value is not False and value != []:
            raise _Unsupported(name)


def _compile(node: Any, depth: int) -> Native:
    if depth > _MAX_DEPTH:
        raise _Unsupported("too deep")
    kind = getattr(node, "type", None)
    if kind in ("string", "number", "value"):
        _plain(node)
        return _literal(node.value)
    if kind == "path":
        _plain(node, "steps")
        return _path(node.steps, depth)
    if kind == "binary":
        _plain(node, "lhs", "rhs")
        return _binary(
            str(node.value), _compile(node.lhs, depth + 1), _compile(node.rhs, depth + 1)
        )
    if kind == "unary" and node.value == "-":
        _plain(node, "expression")
        return _negate(_compile(node.expression, depth + 1))
    if kind == "condition":
        _plain(node, "condition", "then", "_else")
        otherwise = None if node._else is None else _compile(node._else, depth + 1)
        return _condition(
            _compile(node.condition, depth + 1), _compile(node.then, depth + 1), otherwise
        )
    if kind == "function":
        _plain(node, "procedure", "arguments")
        return _call(node, depth)
    if kind == "block" and len(node.expressions) == 1:
        _plain(node, "expressions")  # `(expr)`: a new frame, which only bindings would notice
        return _compile(node.expressions[0], depth + 1)
    raise _Unsupported(str(kind))


def _literal(value: Any) -> Native:
    if value is None:
        value = _NULL
    elif type(value) not in (str, int, float, bool):
        raise _Unsupported("literal")

    def literal(_: Any) -> Any:
        return value

    return literal


def _path(steps: list[Any], depth: int) -> Native:
    names: list[str] = []
    for step in steps[:-1]:
        if step.type != "name":
            raise _Unsupported("step")
        _plain(step)
        names.append(str(step.value))
    last = steps[-1]
    if last.type != "name":
        raise _Unsupported("step")
    _plain(last, "stages")
    names.append(str(last.value))
    if not last.stages:
        return _walk(tuple(names))
    if len(last.stages) != 1 or last.stages[0].type != "filter":
        raise _Unsupported("stage")
    predicate = last.stages[0].expr
    if predicate.type == "number":
        raise _Unsupported("index")  # `a[0]` picks an item by position
    return _filter(_walk(tuple(names), ends_on_list=True), _compile(predicate, depth + 1))


def _walk(names: tuple[str, ...], *, ends_on_list: bool = False) -> Native:
    def walk(value: Any) -> Any:
        # Functions.lookup: a present null is JSONata null; a missing key, undefined (None).
        for name in names:
            if isinstance(value, dict):
                value = value.get(name, _ABSENT)
                if value is None:
                    value = _NULL
                elif value is _ABSENT:
                    return None
            elif isinstance(value, list):
                raise Fallback  # JSONata maps the rest of the path over the list
            else:
                return None
        if isinstance(value, list) and not ends_on_list:
            raise Fallback  # sequence flattening and singleton rules: left to the interpreter
        return value

    return walk


def _filter(read: Native, predicate: Native) -> Native:
    def keep(item: Any) -> bool:
        result = predicate(item)
        if result is True or result is False:
            return result
        if type(result) in (int, float) or isinstance(result, list):
            raise Fallback  # a number selects by position
        return bool(_boolize(result))

    def filtered(document: Any) -> Any:
        value = read(document)
        if value is None:
            return None
        matches = _Matches()
        for item in value if isinstance(value, list) else (value,):
            if not isinstance(item, dict):
                raise Fallback
            if keep(item):
                matches.append(item)
        if not matches:
            return None
        return matches[0] if len(matches) == 1 else matches

    return filtered


def _negate(operand: Native) -> Native:
    def negate(document: Any) -> Any:
        value = operand(document)
        if value is None:
            return None
        if not _number(value):
            raise Fallback
        try:
            return _convert_number(-float(value))
        except OverflowError:
            raise Fallback from None

    return negate


def _condition(test: Native, then: Native, otherwise: Native | None) -> Native:
    def condition(document: Any) -> Any:
        if _truthy(test(document)):
            return then(document)
        return None if otherwise is None else otherwise(document)

    return condition


def _binary(op: str, lhs: Native, rhs: Native) -> Native:
    if op == "and":
        return lambda document: _truthy(lhs(document)) and _truthy(rhs(document))
    if op == "or":
        return lambda document: _truthy(lhs(document)) or _truthy(rhs(document))
    if op in _ARITHMETIC:
        return _arithmetic(_ARITHMETIC[op], lhs, rhs)
    if op in ("=", "!="):
        return _equality(op == "=", lhs, rhs)
    if op in _ORDER:
        return _comparison(_ORDER[op], lhs, rhs)
    if op == "&":
        return _concat(lhs, rhs)
    raise _Unsupported(op)


_ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": float.__add__,
    "-": float.__sub__,
    "*": float.__mul__,
    "/": float.__truediv__,
    "%": lambda a, b: int(math.fmod(a, b)),
}
_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _arithmetic(apply: Callable[[float, float], float], lhs: Native, rhs: Native) -> Native:
    def arithmetic(document: Any) -> Any:
        a, b = lhs(document), rhs(document)
        if (a is not None and not _number(a)) or (b is not None and not _number(b)):
            raise Fallback  # the interpreter raises T2001/T2002
        if a is None or b is None:
            return None
        try:
            result = apply(float(a), float(b))
        except (ArithmeticError, ValueError):
            raise Fallback from None  # division by zero, huge ints: the interpreter decides
        if not math.isfinite(result):
            raise Fallback
        return _convert_number(result)

    return arithmetic


def _equality(equal: bool, lhs: Native, rhs: Native) -> Native:
    def equality(document: Any) -> Any:
        a, b = lhs(document), rhs(document)
        if a is None or b is None:
            return False
        kind_a, kind_b = type(a), type(b)
        if _number(a) and _number(b):
            try:
                same = float(a) == float(b)
            except OverflowError:
                raise Fallback from None
        elif kind_a is kind_b and kind_a in (str, bool):
            same = a == b
        else:
            raise Fallback
        return same if equal else not same

    return equality


def _comparison(compare: Callable[[Any, Any], bool], lhs: Native, rhs: Native) -> Native:
    def comparison(document: Any) -> Any:
        a, b = lhs(document), rhs(document)
        if (a is not None and not (type(a) is str or _number(a))) or (
            b is not None and not (type(b) is str or _number(b))
        ):
            raise Fallback  # T2010
        if a is None or b is None:
            return None
        if type(a) is not type(b):
            if type(a) is str or type(b) is str:
                raise Fallback  # T2009
            try:
                a, b = float(a), float(b)
            except OverflowError:
                raise Fallback from None
        return compare(a, b)

    return comparison


def _text(value: Any) -> str:
    if type(value) is str:
        return value
    if value is None:
        return ""
    if type(value) is bool or _number(value):
        return str(_FUNCTIONS.string(value, None))
    raise Fallback


def _concat(lhs: Native, rhs: Native) -> Native:
    return lambda document: _text(lhs(document)) + _text(rhs(document))


# --- functions ------------------------------------------------------------------------------------


def _count(value: Any) -> Any:
    if value is None:
        return 0
    if type(value) is _Matches:
        return len(value)
    if isinstance(value, dict) or type(value) in (str, bool) or _number(value):
        return 1
    raise Fallback


def _exists(value: Any) -> Any:
    return value is not None


def _scalar(function: Callable[..., Any]) -> Callable[[Any], Any]:
    def scalar(value: Any) -> Any:
        if type(value) in (str, bool) or _number(value):
            return function(value)
        raise Fallback

    return scalar


def _on_text(function: Callable[[str], Any]) -> Callable[[Any], Any]:
    def on_text(value: Any) -> Any:
        if type(value) is str:
            return function(value)
        raise Fallback

    return on_text


_BUILTINS: dict[str, Callable[[Any], Any]] = {
    "count": _count,
    "exists": _exists,
    "string": _scalar(lambda value: _FUNCTIONS.string(value, None)),
    "boolean": _scalar(_FUNCTIONS.to_boolean),
    "not": _scalar(_FUNCTIONS.not_),
    "uppercase": _on_text(_FUNCTIONS.uppercase),
    "lowercase": _on_text(_FUNCTIONS.lowercase),
    "length": _on_text(_FUNCTIONS.length),
}


def _call(node: Any, depth: int) -> Native:
    procedure = node.procedure
    if getattr(procedure, "type", None) != "variable" or node.value != "(":
        raise _Unsupported("call")
    _plain(procedure)
    builtin = _BUILTINS.get(str(procedure.value))
    if builtin is None or len(node.arguments or ()) != 1:
        raise _Unsupported("function")
    argument = _compile(node.arguments[0], depth + 1)
    return lambda document: builtin(argument(document))
