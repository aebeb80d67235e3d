"""An action's or trigger's inputs checked against its pydantic model, in words.

`input_problems(model, inputs)` validates the inputs as a flow holds them, before any run: a
value that is a template (a string holding `{{`) is only known when it is rendered, so whatever
pydantic says about it, or about a value that contains one (a list or object with a template
inside), is left for the run; everything else is certain now. Each problem names its field
(`method`, `signature.scheme`, `methods[2]`) and says what is wrong the way a person would
("'FETCH' is not one of GET, POST, ..."), never as pydantic's raw error. Values of secret fields
(`SecretStr`) are never shown.

`problems_of(model, exc, inputs)` describes a `ValidationError` the same way, for inputs that were
validated elsewhere (rendered trigger settings at deploy, on the webhook path). `model_at` and
`model_keys` follow a pydantic error location through nested models; `runtime.files` uses them
for integration files too.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_core import ErrorDetails

from runtime.expressions import is_template

__all__ = [
    "InputProblem",
    "closest_key",
    "input_problems",
    "model_at",
    "model_keys",
    "problems_of",
]

Loc = tuple[int | str, ...]

_EXPECTED = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "tuple_type": "a list",
    "set_type": "a list",
    "dict_type": "an object (key: value)",
    "model_type": "an object (key: value)",
    "model_attributes_type": "an object (key: value)",
    "none_required": "empty (null)",
}
_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'")
_SHOWN_CHARS = 60


@dataclass(frozen=True, slots=True)
class InputProblem:
    """One problem of one input field."""

    loc: Loc
    """Where, as keys and list indexes into the inputs (pydantic's union tags left out)."""
    field: str
    """`loc` as a reader writes it: `signature.scheme`, `methods[2]`."""
    kind: str
    """pydantic's error type, e.g. `literal_error`, `missing`, `extra_forbidden`."""
    message: str
    """What is wrong, in words, ending with a full stop."""


def input_problems(model: type[BaseModel], inputs: Mapping[str, Any]) -> list[InputProblem]:
    """The problems of `inputs` for `model` that hold whatever the templates in them render to.

    A validator that raises something other than a validation error is not reported here: the run
    reports it, with the values it really gets.
    """
    try:
        model.model_validate(inputs)
    except ValidationError as exc:
        templated = list(_template_paths(inputs, ()))
        return _described(model, exc, inputs, templated)
    except Exception:  # a component's validator crashed: that is for the run to report
        return []
    return []


def problems_of(
    model: type[BaseModel], exc: ValidationError, inputs: Mapping[str, Any]
) -> list[InputProblem]:
    """`exc` (from validating `inputs` against `model`) as one problem per field, in its order."""
    return _described(model, exc, inputs, [])


def _described(
    model: type[BaseModel], exc: ValidationError, inputs: Mapping[str, Any], templated: list[Loc]
) -> list[InputProblem]:
    """The errors of `exc` by field, in words; those a template at `templated` may cause left out
    (before they are described: most steps' errors are about their templates)."""
    by_loc: dict[Loc, list[ErrorDetails]] = {}
    for error in exc.errors(include_url=False, include_context=True, include_input=True):
        loc = _data_loc(error, inputs)
        if not any(_overlap(loc, path) for path in templated):
            by_loc.setdefault(loc, []).append(error)
    problems = []
    for loc, errors in by_loc.items():
        # A union reports the value once per member: "should be a whole number or text, not ..."
        kinds = [e["type"] for e in errors]
        if len(errors) > 1 and all(k in _EXPECTED for k in kinds):
            expected = list(dict.fromkeys(_EXPECTED[k] for k in kinds))
            either = ", ".join(expected[:-1]) + " or " + expected[-1]
            shown = _shown(errors[0].get("input"), _is_secret(model, loc))
            message = f"should be {either}, not {shown}."
        else:
            message = _words(model, errors[0], loc)
        problems.append(InputProblem(loc, _field(loc), kinds[0], message))
    return problems


def model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model that holds the key at the end of `loc`, following `root`'s field annotations
    (optional fields, lists and dicts of models); None when `loc` leaves the models."""
    current: Any = root
    for segment in loc[:-1]:
        current = _unwrap_optional(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = next(
                (
                    info
                    for name, info in current.model_fields.items()
                    if segment in (name, info.alias)
                ),
                None,
            )
            if field is None:
                return None
            current = field.annotation
        elif get_origin(current) is list and isinstance(segment, int):
            current = get_args(current)[0]
        elif get_origin(current) is dict and isinstance(segment, str):
            current = get_args(current)[1]
        else:
            return None
    current = _unwrap_optional(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def model_keys(model: type[BaseModel]) -> list[str]:
    """The keys a model takes, as written in a file (aliases where set)."""
    return [info.alias or name for name, info in model.model_fields.items()]


def closest_key(model: type[BaseModel], key: object) -> tuple[list[str], str | None]:
    """The keys `model` takes, and the one an unknown `key` was most likely meant to be."""
    allowed = model_keys(model)
    close = difflib.get_close_matches(str(key), allowed, n=1)
    return allowed, close[0] if close else None


def _unwrap_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def _template_paths(value: Any, path: Loc) -> Iterator[Loc]:
    if is_template(value):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _template_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _template_paths(item, (*path, index))


def _overlap(loc: Loc, template: Loc) -> bool:
    """Whether an error at `loc` may come from the template at `template`: it is about the
    template itself, something inside what it renders, or a value that contains it."""
    shorter = min(len(loc), len(template))
    return loc[:shorter] == template[:shorter]


def _data_loc(error: ErrorDetails, inputs: Mapping[str, Any]) -> Loc:
    """The error's location with pydantic's union member tags (`str`, `function-after[...]`)
    dropped: only keys and indexes that exist in the inputs, plus a missing key at the end."""
    loc: list[int | str] = []
    node: Any = inputs
    segments = tuple(error["loc"])
    for i, segment in enumerate(segments):
        indexes = (isinstance(node, dict) and segment in node) or (
            isinstance(node, list) and isinstance(segment, int) and 0 <= segment < len(node)
        )
        if indexes:
            node = node[segment]
        elif i < len(segments) - 1 or error["type"] != "missing":
            continue  # a union member's tag, not a key of the inputs
        loc.append(segment)
    return tuple(loc)


def _field(loc: Loc) -> str:
    text = ""
    for segment in loc:
        text += f"[{segment}]" if isinstance(segment, int) else f".{segment}" if text else segment
    return text


def _is_secret(model: type[BaseModel], loc: Loc) -> bool:
    holder = model_at(model, loc) if loc else None
    if holder is None or not isinstance(loc[-1], str):
        return False
    info = holder.model_fields.get(loc[-1])
    return info is not None and _mentions(info.annotation, SecretStr)


def _mentions(annotation: Any, kind: type) -> bool:
    return annotation is kind or any(_mentions(a, kind) for a in get_args(annotation))


def _shown(value: Any, secret: bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    if secret:
        return "text" if isinstance(value, str) else "a number"
    if isinstance(value, str):
        text = value if len(value) <= _SHOWN_CHARS else value[: _SHOWN_CHARS - 3] + "..."
        return "'" + "".join(c if c.isprintable() else _escaped(c) for c in text) + "'"
    return str(value)


def _escaped(char: str) -> str:
    return char.encode("unicode_escape").decode("ascii")


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "?", "!")) else text + "."


def _words(model: type[BaseModel], error: ErrorDetails, loc: Loc) -> str:
    kind, value = error["type"], error.get("input")
    shown = _shown(value, _is_secret(model, loc))
    if kind == "missing":
        return "is required; give it a value."
    if kind == "extra_forbidden":
        holder = model_at(model, loc)
        if holder is None:
            return "there is no such setting."
        allowed, close = closest_key(holder, loc[-1])
        guess = f"; did you mean '{close}'?" if close else "."
        return f"there is no such setting{guess} Allowed: {', '.join(allowed)}."
    if kind in ("literal_error", "enum") and "expected" in error.get("ctx", {}):
        expected = _QUOTED.sub(r"\1", str(error["ctx"]["expected"])).replace(" or ", ", ")
        return f"{shown} is not one of {expected}."
    if kind == "string_unicode":
        return "holds a lone surrogate (a broken \\ud800-style escape), which is not text."
    if kind in _EXPECTED:
        return f"should be {_EXPECTED[kind]}, not {shown}."
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if message.startswith("Input should"):
        message = "must" + message.removeprefix("Input should")
    return _sentence(message)
